// Ralph loops end to end: the real ralphd and ralph, the real opencode 1.18.33, and the scripted
// model deciding, from directives in the prompt, what the agent does in each iteration.
#include "daemon/proc_scan.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <set>
#include <thread>

namespace ralph::test {
namespace {

namespace json = boost::json;

int64_t StartRun(E2EEnv& env, const std::vector<std::string>& args, const std::string& cwd)
{
    std::vector<std::string> all = {"run"};
    all.insert(all.end(), args.begin(), args.end());
    json::value run = env.RalphJson(all, cwd);
    return run.at("id").as_int64();
}

/// Waits until run `id` has begun iteration `n` (generously: opencode may first have to start).
bool WaitForIteration(E2EEnv& env, int64_t id, int64_t n)
{
    return WaitFor(
        [&] {
            auto reply = env.Call("run.get", json::object{{"run", id}});
            return reply.contains("result") && reply.at("result").at("iteration").as_int64() >= n;
        },
        std::chrono::seconds(120));
}

/// Waits until a scripted `sleep 300` tool runs under this environment's opencode: the iteration
/// that called it stays in flight until someone ends it.
bool WaitForSleepingTool(E2EEnv& env)
{
    return WaitFor(
        [&] {
            ProcFs proc;
            for (int pid : proc.Pids())
                if (proc.Cmdline(pid) == std::vector<std::string>{"sleep", "300"} && proc.EnvironHas(pid, "HOME=" + env.home))
                    return true;
            return false;
        },
        std::chrono::seconds(120));
}

std::vector<std::string> Outcomes(const json::object& run)
{
    std::vector<std::string> out;
    for (const auto& it : run.at("iterations").as_array()) out.emplace_back(it.at("outcome").as_string());
    return out;
}

TEST(E2ELoop, CompletesByPromiseAtIterationThreeWithTheFilesWritten)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "hello", "Iteration {ITERATION} of {TASK_NAME}.\nWRITE:out/it-{ITERATION}.txt=ok COMPLETE_AFTER:3\n");
    auto r = env.Ralph({"run", "hello", "-n", "5", "-f"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << env.DaemonStderr();
    EXPECT_NE(r.out.find("run completed (promise)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("tool write"), std::string::npos) << r.out;
    json::value run = env.RalphJson({"show", "hello"}, project);
    EXPECT_EQ(run.at("status"), "completed");
    EXPECT_EQ(run.at("reason"), "promise");
    EXPECT_EQ(run.at("iteration"), 3);
    EXPECT_EQ(Outcomes(run.as_object()), (std::vector<std::string>{"continue", "continue", "complete"}));
    for (int i = 1; i <= 3; ++i) EXPECT_EQ(ReadFile(project + "/out/it-" + std::to_string(i) + ".txt"), "ok") << i;
    EXPECT_FALSE(PathExists(project + "/out/it-4.txt"));
    // Each iteration had its own session, recorded, and tokens were summed.
    std::set<std::string> sessions;
    for (const auto& it : run.at("iterations").as_array()) sessions.insert(std::string(it.at("session_id").as_string()));
    EXPECT_EQ(sessions.size(), 3u);
    EXPECT_GT(run.at("tokens").at("input").as_int64(), 0);
}

TEST(E2ELoop, CompletesWhenEveryPrdStoryPasses)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    // The agent marks the stories as passing with its bash tool; the promise never comes.
    env.AddTask(project, "stories", "BASH:\"sed -i s/false/true/ tasks/stories/prd.json\"\n",
                R"({"branchName": "ralph/stories", "userStories": [
                     {"id": "US-001", "title": "one", "priority": 1, "passes": false, "notes": "kept"},
                     {"id": "US-002", "title": "two", "priority": 2, "passes": false}]})");
    auto r = env.Ralph({"run", "stories", "-f"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    json::value run = env.RalphJson({"show", "stories"}, project);
    EXPECT_EQ(run.at("status"), "completed");
    EXPECT_EQ(run.at("reason"), "prd_complete");
    EXPECT_EQ(run.at("iteration"), 1);
}

TEST(E2ELoop, BrokenPrdFailsTheRunWithTheLine)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "broken", "TEXTONLY\n", "{\n  \"userStories\": [\n    {\"id\": 1,,}\n  ]\n}\n");
    auto r = env.Ralph({"run", "broken"}, project);
    EXPECT_EQ(r.exit_code, 5);  // failed (SPEC §11)
    EXPECT_NE(r.err.find("task_invalid"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("line 3"), std::string::npos) << r.err;
    json::value run = env.RalphJson({"show", "broken"}, project);
    EXPECT_EQ(run.at("status"), "failed");
    EXPECT_EQ(run.at("reason"), "task_invalid");
}

TEST(E2ELoop, MaxIterationsStopsTheRun)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "endless", "TEXTONLY\n");
    auto r = env.Ralph({"run", "endless", "-n", "2", "-f"}, project);
    EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
    json::value run = env.RalphJson({"show", "endless"}, project);
    EXPECT_EQ(run.at("status"), "stopped");
    EXPECT_EQ(run.at("reason"), "max_iterations");
    EXPECT_EQ(Outcomes(run.as_object()), (std::vector<std::string>{"continue", "continue"}));
}

TEST(E2ELoop, TaskReferencesResolveToTheSameTask)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::string task = env.AddTask(project, "use-dev-backend-locally", "PROMISE\n");
    env.AddTask(project, "other-task", "PROMISE\n");
    std::filesystem::create_directories(project + "/src/deep");
    // A bare name from a subdirectory, tasks/<name> from the root, and an absolute path.
    for (auto [ref, cwd] : {std::pair{std::string("use-dev-backend-locally"), project + "/src/deep"},
                            std::pair{std::string("tasks/use-dev-backend-locally"), project},
                            std::pair{task, std::string("/")}}) {
        auto r = env.Ralph({"--json", "run", ref, "-f"}, cwd);
        EXPECT_EQ(r.exit_code, 0) << ref << ": " << r.err;
        // With -f, --json prints one object per line (SPEC §11): the events, then the run.
        std::string last = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
        json::value run = json::parse(last);
        EXPECT_EQ(run.at("task_dir"), json::value(task)) << ref;
        EXPECT_EQ(run.at("project"), json::value(project)) << ref;
        EXPECT_EQ(run.at("status"), "completed");
    }
    // An unknown name lists the tasks and suggests the closest.
    auto r = env.Ralph({"run", "use-dev-backend"}, project + "/src");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("did you mean 'use-dev-backend-locally'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("other-task"), std::string::npos) << r.err;
    r = env.Ralph({"--json", "run", "nope"}, project);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(json::parse(r.out).at("error").at("name"), "TASK_NOT_FOUND");
}

TEST(E2ELoop, TwoProjectsShareOneServerAndEachSessionWorksInItsOwnProject)
{
    E2EEnv env;
    env.StartDaemon();
    std::string a = env.MakeProject("alpha");
    std::string b = env.MakeProject("beta");
    env.AddTask(a, "t", "SLOW:300 WRITE:mine.txt=alpha COMPLETE_AFTER:3\n");
    env.AddTask(b, "t", "SLOW:300 WRITE:mine.txt=beta COMPLETE_AFTER:3\n");
    int64_t run_a = StartRun(env, {"t"}, a);
    int64_t run_b = StartRun(env, {"t"}, b);
    // Both running at once.
    ASSERT_TRUE(WaitForIteration(env, run_b, 1)) << env.DaemonStderr();
    json::value status = env.RalphJson({"status"}, a);
    int running = 0;
    for (const auto& r : status.at("runs").as_array()) running += r.at("status") == "running";
    EXPECT_EQ(running, 2);
    int64_t pid = status.at("server").at("pid").as_int64();
    auto ra = env.WaitRunEnd(run_a);
    auto rb = env.WaitRunEnd(run_b);
    EXPECT_EQ(ra.at("status"), "completed");
    EXPECT_EQ(rb.at("status"), "completed");
    EXPECT_EQ(ReadFile(a + "/mine.txt"), "alpha");
    EXPECT_EQ(ReadFile(b + "/mine.txt"), "beta");
    // One server for both: the same pid throughout, every iteration on its port.
    EXPECT_EQ(env.RalphJson({"status"}, a).at("server").at("pid").as_int64(), pid);
    for (const auto& run : {ra, rb})
        for (const auto& it : run.at("iterations").as_array()) EXPECT_EQ(it.at("port"), ra.at("last_port"));
}

TEST(E2ELoop, SecondRunOfARunningTaskIsRefusedNamingTheRun)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "slow", "SLOW:2000 TEXTONLY\n");
    int64_t id = StartRun(env, {"slow", "-n", "1"}, project);
    auto r = env.Ralph({"run", "slow"}, project);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("already has a running run: run " + std::to_string(id)), std::string::npos) << r.err;
    r = env.Ralph({"--json", "run", "slow"}, project);
    EXPECT_EQ(json::parse(r.out).at("error").at("name"), "ALREADY_RUNNING");
    env.WaitRunEnd(id);
}

TEST(E2ELoop, StopFinishesTheIterationAndStopNowAbortsIt)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "slow", "SLOW:1500 TEXTONLY\n");
    int64_t id = StartRun(env, {"slow", "-n", "10"}, project);
    ASSERT_TRUE(WaitForIteration(env, id, 1)) << env.DaemonStderr();
    auto r = env.Ralph({"stop", "slow"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("stops after iteration"), std::string::npos) << r.out;
    auto run = env.WaitRunEnd(id);
    EXPECT_EQ(run.at("status"), "stopped");
    EXPECT_EQ(run.at("reason"), "user");
    auto outcomes = Outcomes(run);
    ASSERT_FALSE(outcomes.empty());
    EXPECT_EQ(outcomes.back(), "continue");  // the iteration was allowed to finish

    env.AddTask(project, "slower", "SLOW:60000 TEXTONLY\n");
    id = StartRun(env, {"slower"}, project);
    ASSERT_TRUE(WaitForIteration(env, id, 1)) << env.DaemonStderr();
    auto start = std::chrono::steady_clock::now();
    r = env.Ralph({"stop", std::to_string(id), "--now"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    run = env.WaitRunEnd(id, std::chrono::seconds(30));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
    EXPECT_EQ(run.at("status"), "stopped");
    EXPECT_EQ(run.at("reason"), "user");
    EXPECT_EQ(Outcomes(run), (std::vector<std::string>{"aborted"}));
    // Stopping a run that is not running changes nothing.
    r = env.Ralph({"stop", std::to_string(id)}, project);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("is not running"), std::string::npos) << r.out;
}

TEST(E2ELoop, IterationTimeoutAbortsTheSession)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "hang", "SLOW:60000 TEXTONLY\n");
    auto r = env.Ralph({"run", "hang", "-n", "1", "--iteration-timeout", "2s", "-f"}, project);
    EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
    json::value run = env.RalphJson({"show", "hang"}, project);
    EXPECT_EQ(Outcomes(run.as_object()), (std::vector<std::string>{"timeout"}));
    EXPECT_NE(std::string(run.at("iterations").as_array()[0].at("error").as_string()).find("longer than 2s"),
              std::string::npos);
    EXPECT_NE(ReadFile(project + "/tasks/hang/progress.txt").find("iteration 1 of run"), std::string::npos);
}

TEST(E2ELoop, ModelAuthErrorFailsTheRunAfterTheFailureLimit)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "denied", "FAIL401\n");
    auto r = env.Ralph({"run", "denied", "-f"}, project);
    EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
    json::value run = env.RalphJson({"show", "denied"}, project);
    EXPECT_EQ(run.at("status"), "failed");
    EXPECT_EQ(run.at("reason"), "consecutive_failures");
    EXPECT_EQ(Outcomes(run.as_object()), (std::vector<std::string>{"error", "error", "error"}));
    EXPECT_NE(std::string(run.at("iterations").as_array()[0].at("error").as_string()).find("Incorrect API key"),
              std::string::npos);
    std::string progress = ReadFile(project + "/tasks/denied/progress.txt");
    EXPECT_NE(progress.find("iteration 3 of run"), std::string::npos) << progress;
}

TEST(E2ELoop, QuestionsAndOutsideWritesNeverHangTheLoop)
{
    // opencode's own defaults here: outside writes and questions would ask and wait forever.
    E2EEnv env(false);
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::string outside = env.dir + "/outside.txt";
    env.AddTask(project, "asks", "QUESTION WRITE_OUTSIDE:" + outside + "=escaped COMPLETE_AFTER:2\n");
    auto r = env.Ralph({"run", "asks", "-n", "3", "--iteration-timeout", "60s", "-f"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    json::value run = env.RalphJson({"show", "asks"}, project);
    EXPECT_EQ(run.at("status"), "completed");
    EXPECT_EQ(Outcomes(run.as_object()), (std::vector<std::string>{"continue", "complete"}));
}

TEST(E2ELoop, ServerColumnShowsOnlyALiveAddress)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "slow", "SLOW:1500 TEXTONLY\n");
    auto before = env.Ralph({"status"}, project);
    EXPECT_NE(before.out.find("no runs yet"), std::string::npos) << before.out;

    int64_t id = StartRun(env, {"slow", "-n", "2"}, project);
    ASSERT_TRUE(WaitForIteration(env, id, 1)) << env.DaemonStderr();
    json::value during = env.RalphJson({"status"}, project);
    const json::value& live = during.at("runs").as_array()[0];
    std::string port = std::to_string(during.at("server").at("port").as_int64());
    EXPECT_EQ(live.at("server_url"), json::value("http://127.0.0.1:" + port));
    auto text = env.Ralph({"status"}, project);
    std::string row = text.out.substr(text.out.find("\n1 "));
    row = row.substr(1, row.find('\n', 1));
    EXPECT_NE(row.find(" running "), std::string::npos) << text.out;
    EXPECT_NE(row.find(" 127.0.0.1:" + port + " "), std::string::npos) << text.out;

    env.WaitRunEnd(id);
    json::value after = env.RalphJson({"status"}, project);
    EXPECT_TRUE(after.at("runs").as_array()[0].at("server_url").is_null());
    EXPECT_EQ(after.at("runs").as_array()[0].at("last_port").as_int64(), std::stoi(port));
    text = env.Ralph({"status"}, project);
    EXPECT_EQ(text.out.find("127.0.0.1:" + port + "  "), std::string::npos) << text.out;

    EXPECT_EQ(env.Ralph({"server", "stop"}).exit_code, 0);
    after = env.RalphJson({"status"}, project);
    EXPECT_TRUE(after.at("runs").as_array()[0].at("server_url").is_null());
    EXPECT_EQ(after.at("server").at("state"), "stopped");
}

TEST(E2ELoop, LogsFollowSeesTheIterationsOfALiveRun)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "three", "SLOW:500 WRITE:x-{ITERATION}.txt=x COMPLETE_AFTER:3\n");
    int64_t id = StartRun(env, {"three"}, project);
    auto r = env.Ralph({"logs", "three", "-f"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    for (int i = 1; i <= 3; ++i) EXPECT_NE(r.out.find("#" + std::to_string(i) + "  iteration started"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("tool write: x-2.txt"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("run completed (promise)"), std::string::npos) << r.out;
    // The log afterwards holds the same, iteration by iteration.
    auto second = env.Ralph({"logs", std::to_string(id), "--iteration", "2"}, project);
    EXPECT_NE(second.out.find("x-2.txt"), std::string::npos);
    EXPECT_EQ(second.out.find("x-1.txt"), std::string::npos);
}

TEST(E2ELoop, DaemonKilledMidRunResumesWithOneInterruptedIteration)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    // Iteration 2 runs a tool that sleeps until it is ended: the kill lands in it, however fast
    // the machine is.
    env.AddTask(project, "long", "WRITE:it-{ITERATION}.txt=x BASH:\"test {ITERATION} = 2 && sleep 300; true\" COMPLETE_AFTER:3\n");
    int64_t id = StartRun(env, {"long", "-n", "6"}, project);
    ASSERT_TRUE(WaitForIteration(env, id, 2)) << env.DaemonStderr();
    ASSERT_TRUE(WaitForSleepingTool(env)) << "iteration 2's tool never ran\n" << env.DaemonStderr();
    env.KillDaemon();
    env.StartDaemon();
    auto run = env.WaitRunEnd(id);
    EXPECT_EQ(run.at("status"), "completed") << env.DaemonStderr();
    EXPECT_EQ(Outcomes(run), (std::vector<std::string>{"continue", "interrupted", "complete"})) << json::serialize(run);
    // Iteration numbers are contiguous.
    int n = 1;
    for (const auto& it : run.at("iterations").as_array()) EXPECT_EQ(it.at("n"), n++);
}

}  // namespace
}  // namespace ralph::test

namespace ralph::test {
namespace {

TEST(E2ELoop, ServerKilledMidIterationInterruptsItAndTheRunGoesOn)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    // Iteration 1 runs a tool that sleeps until it is ended: the kill lands in it.
    env.AddTask(project, "long", "WRITE:it-{ITERATION}.txt=x BASH:\"test {ITERATION} = 1 && sleep 300; true\" COMPLETE_AFTER:3\n");
    int64_t id = StartRun(env, {"long", "-n", "6"}, project);
    ASSERT_TRUE(WaitForIteration(env, id, 1)) << env.DaemonStderr();
    ASSERT_TRUE(WaitForSleepingTool(env)) << "iteration 1's tool never ran\n" << env.DaemonStderr();
    json::value server = env.RalphJson({"server", "status"});
    pid_t pid = static_cast<pid_t>(server.at("pid").as_int64());
    ASSERT_GT(pid, 0);
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    auto run = env.WaitRunEnd(id);
    EXPECT_EQ(run.at("status"), "completed") << env.DaemonStderr();
    EXPECT_EQ(Outcomes(run), (std::vector<std::string>{"interrupted", "continue", "complete"})) << json::serialize(run);
    // The run went on with a new server.
    json::value after = env.RalphJson({"server", "status"});
    EXPECT_NE(after.at("pid").as_int64(), pid);
    EXPECT_GE(after.at("restarts").as_int64(), 1);
    if (getenv("RALPH_TEST_SHOW_LOG")) {
        std::cerr << env.DaemonStderr() << json::serialize(run) << "\n" << env.Ralph({"logs", "long"}).out;
    }
}

}  // namespace
}  // namespace ralph::test

namespace ralph::test {
namespace {

TEST(E2ELoop, IdleStopStopsTheServerOnceNoRunIsActive)
{
    E2EEnv env(true, "idle_stop = 1s\n");
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "quick", "PROMISE\n");
    auto r = env.Ralph({"run", "quick", "-f"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(WaitFor([&] { return env.RalphJson({"server", "status"}).at("state") == "stopped"; },
                        std::chrono::seconds(20)))
        << env.DaemonStderr();
    EXPECT_NE(env.DaemonStderr().find("server.idle_stop"), std::string::npos);
    // The next run starts it again on demand.
    r = env.Ralph({"run", "quick", "-f"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace ralph::test
