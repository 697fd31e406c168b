// SPEC §8 budgets, the verification gate and story progress, end to end through the real ralph,
// ralphd, opencode 1.18.33 and the scripted model: a budget by cost, by tokens and by time each
// stops its run in the middle of an iteration (outcome `aborted`, run `stopped` (`budget`) with
// `reason_detail`); a verify command that fails twice completes the run at the third claim, the
// failures recorded and shown to the agent; a hanging verify is killed with its process group.
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <signal.h>

namespace ralph::test {
namespace {

namespace json = boost::json;

const json::array& Iterations(const json::object& run) { return run.at("iterations").as_array(); }

/// Gives the scripted model a price in opencode's config: USD per million tokens.
void SetModelCost(E2EEnv& env, double input, double output)
{
    std::string path = env.dir + "/config/opencode/opencode.json";
    json::value config = json::parse(ReadFile(path));
    config.at("provider").at("fake").at("models").at("fake-model").as_object()["cost"] =
        json::object{{"input", input}, {"output", output}};
    WriteFile(path, json::serialize(config));
}

/// The run ended by a budget in its first iteration, aborted while the agent was still working.
void ExpectStoppedByBudget(const json::object& run, const std::string& budget)
{
    EXPECT_EQ(run.at("status"), "stopped") << json::serialize(run);
    EXPECT_EQ(run.at("reason"), "budget") << json::serialize(run);
    ASSERT_TRUE(run.at("reason_detail").is_string()) << json::serialize(run);
    EXPECT_EQ(std::string(run.at("reason_detail").as_string()).rfind(budget + ": ", 0), 0u) << json::serialize(run);
    ASSERT_EQ(Iterations(run).size(), 1u) << json::serialize(run);
    EXPECT_EQ(Iterations(run)[0].at("outcome"), "aborted") << json::serialize(run);
}

TEST(E2EBudget, MaxCostStopsTheRunInTheMiddleOfAnIteration)
{
    E2EEnv env;
    // $1000 per million tokens: the first step's ~7,700 prompt tokens cost about $7.70.
    SetModelCost(env, 1000, 1000);
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    // Step one runs a command; step two (the answer after it) is slow: the budget trips between.
    env.AddTask(project, "t", "SLOW:4000 BASH:true PROMISE\n");
    auto r = env.Ralph({"run", "t", "--max-cost", "1", "-f"}, project, {}, std::chrono::seconds(120));
    EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
    EXPECT_EQ(r.err.find("no cost configured"), std::string::npos) << r.err;
    json::object run = env.WaitRunEnd(1);
    ExpectStoppedByBudget(run, "max_cost");
    EXPECT_NE(std::string(run.at("reason_detail").as_string()).find("of $1.00"), std::string::npos);
    EXPECT_GE(run.at("cost").to_number<double>(), 1.0) << json::serialize(run);
    EXPECT_EQ(run.at("budget").at("max_cost").to_number<double>(), 1.0);
    EXPECT_TRUE(run.at("budget").at("max_tokens").is_null());
    // ralph show says why.
    auto show = env.Ralph({"show", "1"}, project);
    EXPECT_NE(show.out.find("stopped (budget): max_cost: $"), std::string::npos) << show.out;
    EXPECT_NE(show.out.find("budget:     max_cost $1.00"), std::string::npos) << show.out;
}

TEST(E2EBudget, MaxCostOnAModelWithoutACostWarnsAtStart)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "PROMISE\n");
    auto r = env.Ralph({"run", "t", "--max-cost", "0.50", "-f"}, project, {}, std::chrono::seconds(120));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.err.find("warning: max_cost is set, but the model fake/fake-model has no cost configured"),
              std::string::npos)
        << r.err;
    auto logs = env.Ralph({"logs", "1"}, project);
    EXPECT_NE(logs.out.find("has no cost configured"), std::string::npos) << logs.out;
}

TEST(E2EBudget, MaxTokensStopsTheRunInTheMiddleOfAnIteration)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "SLOW:4000 BASH:true PROMISE\n");
    // The scripted model reports ~7,700 prompt tokens for a step: 1,000 is crossed by the first.
    json::value started = env.RalphJson({"run", "t", "--max-tokens", "1000"}, project);
    json::object run = env.WaitRunEnd(started.at("id").as_int64());
    ExpectStoppedByBudget(run, "max_tokens");
    EXPECT_EQ(run.at("budget").at("max_tokens"), 1000);
    const json::object& tokens = run.at("tokens").as_object();
    EXPECT_GE(tokens.at("input").as_int64() + tokens.at("output").as_int64() + tokens.at("reasoning").as_int64(), 1000);
}

TEST(E2EBudget, MaxTimeStopsTheRunByATimerDuringAQuietToolCall)
{
    E2EEnv env;
    env.StartDaemon();
    // A warm server, so that the run's time goes to its iteration, not to the server's start.
    ASSERT_EQ(env.Ralph({"server", "start"}).exit_code, 0);
    std::string project = env.MakeProject("proj");
    // One long command that sends no events while it runs: only the timer can see the time pass.
    env.AddTask(project, "t", "BASH:\"sleep 300\"\n");
    json::value started = env.RalphJson({"run", "t", "--max-time", "10s"}, project);
    json::object run = env.WaitRunEnd(started.at("id").as_int64());
    ExpectStoppedByBudget(run, "max_time");
    EXPECT_EQ(run.at("budget").at("max_time"), 10000);
}

/// A verify command that fails `fails` times (exit 1, printing "check N failed") and then passes.
std::string FlakyVerify(const std::string& counter, int fails)
{
    return "n=$(cat " + counter + " 2>/dev/null || echo 0); n=$((n+1)); echo $n > " + counter +
           "; if [ $n -le " + std::to_string(fails) + " ]; then echo \"check $n failed\"; exit 1; fi; echo ok";
}

TEST(E2EVerify, AClaimCompletesOnlyOnceVerifyPassesAndTheAgentSeesWhyItFailed)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    // The prompt is the directive and the last verification's output, so the model's log shows it.
    env.AddTask(project, "t", "PROMISE\n{VERIFY_OUTPUT}\n");
    std::string counter = env.dir + "/verify-count";
    auto r = env.Ralph({"run", "t", "--verify", FlakyVerify(counter, 2), "-f"}, project, {}, std::chrono::seconds(180));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    json::object run = env.WaitRunEnd(1);
    EXPECT_EQ(run.at("status"), "completed");
    EXPECT_EQ(run.at("reason"), "promise");
    EXPECT_TRUE(run.at("verify").is_string());
    const json::array& its = Iterations(run);
    ASSERT_EQ(its.size(), 3u) << json::serialize(run);
    for (int i = 0; i < 2; ++i) {
        EXPECT_EQ(its[i].at("outcome"), "continue") << json::serialize(its[i]);
        EXPECT_EQ(its[i].at("promise_seen"), true);
        EXPECT_EQ(its[i].at("verify"), "failed");
        EXPECT_EQ(its[i].at("verify_exit"), 1);
    }
    EXPECT_EQ(its[2].at("outcome"), "complete");
    EXPECT_EQ(its[2].at("verify"), "passed");
    EXPECT_EQ(its[2].at("verify_exit"), 0);
    // The second and third prompts carried the failure before them; progress.txt has both.
    std::string model_log = ReadFile(env.model->log_path);
    EXPECT_NE(model_log.find("check 1 failed"), std::string::npos) << model_log;
    EXPECT_NE(model_log.find("check 2 failed"), std::string::npos) << model_log;
    std::string progress = ReadFile(project + "/tasks/t/progress.txt");
    EXPECT_NE(progress.find("verification failed after iteration 1"), std::string::npos) << progress;
    EXPECT_NE(progress.find("check 2 failed"), std::string::npos) << progress;
    auto show = env.Ralph({"show", "1"}, project);
    EXPECT_NE(show.out.find("VERIFY"), std::string::npos) << show.out;
}

TEST(E2EVerify, AHangingVerifyIsKilledWithItsProcessGroupAtTheTimeout)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "PROMISE\n");
    WriteFile(project + "/tasks/t/ralph.ini", "[run]\nverify_timeout = 2s\nmax_iterations = 1\n");
    std::string pidfile = env.dir + "/verify-child.pid";
    // A child in the background that would outlive a shell killed alone.
    std::string verify = "sleep 300 & echo $! > " + pidfile + "; wait";
    json::value started = env.RalphJson({"run", "t", "--verify", verify}, project);
    json::object run = env.WaitRunEnd(started.at("id").as_int64());
    EXPECT_EQ(run.at("status"), "stopped") << json::serialize(run);
    EXPECT_EQ(run.at("reason"), "max_iterations");
    const json::array& its = Iterations(run);
    ASSERT_EQ(its.size(), 1u);
    EXPECT_EQ(its[0].at("verify"), "timeout");
    EXPECT_TRUE(its[0].at("verify_exit").is_null());
    ASSERT_TRUE(WaitFor([&] { return !ReadFile(pidfile).empty(); }, std::chrono::seconds(10)));
    pid_t child = std::stoi(ReadFile(pidfile));
    EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(child); }, std::chrono::seconds(10))) << "verify's child " << child;
}

TEST(E2EVerify, APrdCompleteAtTheStartIsVerifiedOnceBeforeTheFirstIteration)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "TEXTONLY\n", R"({"userStories": [{"id": "S1", "passes": true}]})");
    const std::string calls = env.dir + "/verify-calls";
    json::value started = env.RalphJson({"run", "t", "-n", "1", "--verify", "echo called >> " + calls + "; exit 1"}, project);
    json::object run = env.WaitRunEnd(started.at("id").as_int64());
    EXPECT_EQ(run.at("reason"), "max_iterations") << json::serialize(run);
    ASSERT_EQ(run.at("iterations").as_array().size(), 1u);
    EXPECT_EQ(run.at("iterations").as_array()[0].at("verify"), "failed");
    // Once before iteration 1 (the loop passes its checks more than once on the way), once after it.
    std::string text = ReadFile(calls);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
}

TEST(E2EStories, StoryProgressIsInTheRunAndInStatus)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "TEXTONLY\n",
                R"({"userStories": [{"id": "S1", "passes": true}, {"id": "S2", "passes": false},
                                    {"id": "S3", "passes": false}]})");
    json::value started = env.RalphJson({"run", "t", "-n", "1"}, project);
    json::object run = env.WaitRunEnd(started.at("id").as_int64());
    EXPECT_EQ(run.at("stories_passed"), 1) << json::serialize(run);
    EXPECT_EQ(run.at("stories_total"), 3);
    auto status = env.Ralph({"status"}, project);
    EXPECT_NE(status.out.find("STORIES"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find(" 1/3 "), std::string::npos) << status.out;
    // Without prd.json: null.
    env.AddTask(project, "u", "TEXTONLY\n");
    json::value other = env.RalphJson({"run", "u", "-n", "1"}, project);
    json::object plain = env.WaitRunEnd(other.at("id").as_int64());
    EXPECT_TRUE(plain.at("stories_total").is_null()) << json::serialize(plain);
}

}  // namespace
}  // namespace ralph::test
