// run.events without `run` (SPEC §12, what `ralph top` reads): every run's events and state
// changes as notifications, with no end of its own. The real ralphd, no opencode (its binary is
// missing on purpose, so each run fails at once, server_unavailable, with events all the same).
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <set>

namespace ralph::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

TEST(FunctionalTop, RunEventsWithoutRunFollowsEveryRunWithItsStates)
{
    TestEnv env;
    env.env["RALPH_OPENCODE"] = env.dir + "/bin/opencode";  // never created
    std::string project = env.dir + "/plain";
    for (const char* task : {"a", "b"}) WriteFile(project + "/tasks/" + task + "/prompt.md", "TEXTONLY\n");
    env.StartDaemon();
    // A run from before the follow: not replayed. The follow starts after its last event (given,
    // since the follow request may be read after the runs below have started).
    auto before = env.Call("run.start", json::object{{"task", "a"}, {"cwd", project}});
    ASSERT_TRUE(before.contains("result")) << json::serialize(before);
    int64_t before_id = before.at("result").at("id").as_int64();
    ASSERT_TRUE(WaitFor([&] { return env.Call("run.get", json::object{{"run", before_id}}).at("result").at("status") != "running"; },
                        30s));
    auto log = env.Call("run.events", json::object{{"run", before_id}});
    ASSERT_TRUE(log.contains("result")) << json::serialize(log);
    int64_t after = log.at("result").at("last_id").as_int64();

    auto stream = env.Connect();
    stream->SendLine(R"({"jsonrpc":"2.0","id":1,"method":"run.events","params":{"follow":true,"after":)" +
                     std::to_string(after) + "}}\n");
    std::vector<int64_t> ids;
    for (const char* task : {"a", "b"}) {
        auto reply = env.Call("run.start", json::object{{"task", task}, {"cwd", project}});
        ASSERT_TRUE(reply.contains("result")) << json::serialize(reply);
        ids.push_back(reply.at("result").at("id").as_int64());
    }
    // For each new run: its run.start and run.end events, and a state event saying it failed.
    std::map<int64_t, std::set<std::string>> seen;
    auto done = [&] {
        for (int64_t id : ids)
            if (!seen[id].count("run.start") || !seen[id].count("run.end") || !seen[id].count("state failed")) return false;
        return true;
    };
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        bool timed_out = false;
        auto line = stream->TryReadLine(1000ms, &timed_out);
        if (timed_out) continue;
        ASSERT_TRUE(line) << "the follow ended";
        json::object o = json::parse(*line).as_object();
        ASSERT_FALSE(o.contains("id")) << "a follow of every run does not end by itself: " << *line;
        ASSERT_EQ(o.at("method"), "run.event") << *line;
        int64_t run = o.at("params").at("run").as_int64();
        const json::object& event = o.at("params").at("event").as_object();
        std::string kind(event.at("kind").as_string());
        if (kind == "state") kind += " " + std::string(event.at("status").as_string());
        seen[run].insert(kind);
    }
    std::string got;
    for (const auto& [id, kinds] : seen)
        for (const auto& k : kinds) got += std::to_string(id) + ":" + k + " ";
    EXPECT_TRUE(done()) << got;
    EXPECT_EQ(seen.count(before_id), 0u) << "the run from before was replayed: " << got;
    // `iteration` needs a run.
    auto bad = env.Call("run.events", json::object{{"iteration", 1}});
    ASSERT_TRUE(bad.contains("error")) << json::serialize(bad);
    EXPECT_EQ(bad.at("error").at("code"), -32602);
}

}  // namespace
}  // namespace ralph::test
