// SPEC §7, §8 provider trouble, end to end through the real ralph, ralphd, opencode 1.18.33 and
// the scripted model: HTTP 429 past opencode's own retries is `rate_limited` (not a failure, not
// counted towards max_iterations), the run waits and goes on; after rate_limit_give_up it fails
// (`provider_unavailable`); a provider on a closed port stays `error` and fails the run by
// consecutive_failures.
#include "tests/harness.h"

#include <gtest/gtest.h>

namespace ralph::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

TEST(E2ERateLimit, HttpTooManyRequestsPastOpencodesRetriesWaitsAndGoesOn)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    // opencode tries a 429 six times (Retry-After: 1): the first iteration meets only 429s.
    std::string task_dir = env.AddTask(project, "t", "FAIL429:6 PROMISE\n");
    WriteFile(task_dir + "/ralph.ini", "[run]\nmax_iterations = 1\nrate_limit_backoff_max = 2s\n");
    json::value started = env.RalphJson({"run", "t"}, project);
    const int64_t id = started.at("id").as_int64();
    json::object run = env.WaitRunEnd(id, 180s);
    // The rate-limited iteration did not use up the one iteration allowed.
    EXPECT_EQ(run.at("status"), "completed") << json::serialize(run);
    EXPECT_EQ(run.at("reason"), "promise");
    EXPECT_EQ(run.at("consecutive_failures"), 0);
    const json::array& its = run.at("iterations").as_array();
    ASSERT_EQ(its.size(), 2u) << json::serialize(run);
    EXPECT_EQ(its[0].at("outcome"), "rate_limited");
    EXPECT_NE(std::string(its[0].at("error").as_string()).find("Rate limit reached"), std::string::npos);
    EXPECT_EQ(its[1].at("outcome"), "complete");
    EXPECT_TRUE(run.at("waiting_until").is_null());
    // It said how long it waited, with the time it waited until.
    auto events = env.Call("run.events", json::object{{"run", id}});
    ASSERT_TRUE(events.contains("result"));
    bool waited = false;
    for (const auto& e : events["result"].at("events").as_array())
        if (e.at("kind") == "note" && e.at("data").as_object().contains("waiting_until")) waited = true;
    EXPECT_TRUE(waited);
    auto logs = env.Ralph({"logs", std::to_string(id)}, project);
    EXPECT_NE(logs.out.find("the provider's rate limit: waiting 2s"), std::string::npos) << logs.out;
}

TEST(E2ERateLimit, NothingButRateLimitsForRateLimitGiveUpFailsTheRun)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::string task_dir = env.AddTask(project, "t", "FAIL429\n");
    WriteFile(task_dir + "/ralph.ini", "[run]\nrate_limit_give_up = 1s\nrate_limit_backoff_max = 1s\n");
    json::value started = env.RalphJson({"run", "t"}, project);
    json::object run = env.WaitRunEnd(started.at("id").as_int64(), 180s);
    EXPECT_EQ(run.at("status"), "failed") << json::serialize(run);
    EXPECT_EQ(run.at("reason"), "provider_unavailable");
    ASSERT_TRUE(run.at("reason_detail").is_string());
    EXPECT_NE(std::string(run.at("reason_detail").as_string()).find("Rate limit reached"), std::string::npos);
    EXPECT_EQ(run.at("consecutive_failures"), 0);
}

TEST(E2ERateLimit, AProviderOnAClosedPortIsAnErrorAndFailsTheRunByConsecutiveFailures)
{
    E2EEnv env;
    PortBlock closed(1);  // reserved, and nobody listens on it
    ASSERT_NE(closed.first, 0);
    std::string path = env.dir + "/config/opencode/opencode.json";
    json::value config = json::parse(ReadFile(path));
    config.at("provider").at("fake").at("options").as_object()["baseURL"] =
        "http://127.0.0.1:" + std::to_string(closed.first) + "/v1";
    WriteFile(path, json::serialize(config));
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::string task_dir = env.AddTask(project, "t", "PROMISE\n");
    WriteFile(task_dir + "/ralph.ini", "[run]\nmax_consecutive_failures = 1\n");
    json::value started = env.RalphJson({"run", "t"}, project);
    // opencode retries a refused connection for about a minute before it gives up.
    json::object run = env.WaitRunEnd(started.at("id").as_int64(), 300s);
    EXPECT_EQ(run.at("status"), "failed") << json::serialize(run);
    EXPECT_EQ(run.at("reason"), "consecutive_failures");
    const json::array& its = run.at("iterations").as_array();
    ASSERT_EQ(its.size(), 1u);
    EXPECT_EQ(its[0].at("outcome"), "error");
    EXPECT_NE(std::string(its[0].at("error").as_string()).find("Cannot connect"), std::string::npos)
        << json::serialize(its[0]);
}

}  // namespace
}  // namespace ralph::test
