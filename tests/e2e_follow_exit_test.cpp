// `ralph run` and its followers tell how a run went (SPEC §11), end to end: the real ralphd and
// ralph, the real opencode 1.18.33 and the scripted model.
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <csignal>
#include <sstream>

namespace ralph::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

json::object GetRun(E2EEnv& env, int64_t id)
{
    auto reply = env.Call("run.get", json::object{{"run", id}});
    EXPECT_TRUE(reply.contains("result")) << json::serialize(reply);
    return reply.contains("result") ? reply.at("result").as_object() : json::object{};
}

int64_t Iteration(E2EEnv& env, int64_t id)
{
    json::object run = GetRun(env, id);
    return run.contains("iteration") ? run.at("iteration").as_int64() : -1;
}

TEST(E2EFollowExit, RunSaysStartedOnlyOnceItsFirstIterationIsGoing)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "slow", "SLOW:60000 TEXTONLY\n");
    // The server is up first, so the first iteration begins well within ralph's look at the run.
    auto server = env.Ralph({"server", "start"});
    ASSERT_EQ(server.exit_code, 0) << server.out << server.err;
    auto r = env.Ralph({"--json", "run", "slow"}, project);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    json::value started = json::parse(r.out);
    int64_t id = started.at("id").as_int64();
    EXPECT_EQ(started.at("status"), "running");
    // Right when ralph answered, the run was in its first iteration, not still waiting to begin.
    json::object run = GetRun(env, id);
    EXPECT_EQ(run.at("status"), "running");
    EXPECT_EQ(run.at("iteration"), 1) << json::serialize(run);
    EXPECT_TRUE(run.at("session_id").is_string()) << json::serialize(run);
    EXPECT_EQ(env.Ralph({"stop", std::to_string(id), "--now"}).exit_code, 0);
    EXPECT_EQ(env.WaitRunEnd(id, 60s).at("status"), "stopped");
}

TEST(E2EFollowExit, StopNowWhileTheServerStartsEndsTheRunWithoutAnIteration)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "slow", "SLOW:600000 TEXTONLY\n");
    // Over the socket, run.start answers at once, while the cold server is still starting.
    auto started = env.Call("run.start", json::object{{"task", "slow"}, {"cwd", project}});
    ASSERT_TRUE(started.contains("result")) << json::serialize(started);
    int64_t id = started.at("result").at("id").as_int64();
    auto stop = env.Call("run.stop", json::object{{"run", id}, {"now", true}});
    ASSERT_TRUE(stop.contains("result")) << json::serialize(stop);
    // Not after a 10-minute iteration: the stop is honoured once the server is up.
    json::object run = env.WaitRunEnd(id, 120s);
    EXPECT_EQ(run.at("status"), "stopped") << json::serialize(run);
    EXPECT_EQ(run.at("reason"), "user") << json::serialize(run);
}

TEST(E2EFollowExit, FollowersExitWithHowTheRunEnded)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "done", "COMPLETE_AFTER:1\n");
    env.AddTask(project, "capped", "TEXTONLY\n");
    auto r = env.Ralph({"run", "done", "-f"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    r = env.Ralph({"logs", "done", "-f"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    r = env.Ralph({"run", "capped", "-n", "1", "-f"}, project);
    EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
    r = env.Ralph({"logs", "capped", "-f"}, project);
    EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
    EXPECT_NE(r.out.find("run stopped (max_iterations)"), std::string::npos) << r.out;
}

TEST(E2EFollowExit, DaemonStopWhileFollowingExitsSixForRunAndLogsAndTheRunGoesOn)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "long", "SLOW:3000 TEXTONLY\n");
    pid_t run_f = SpawnProgram({RALPH_PATH, "run", "long", "-n", "50", "-f"}, env.env, env.dir + "/run.out",
                               env.dir + "/run.err", project);
    int64_t id = 0;
    ASSERT_TRUE(WaitFor(
        [&] {
            auto reply = env.Call("run.list", json::object{});
            if (!reply.contains("result") || reply.at("result").at("runs").as_array().empty()) return false;
            id = reply.at("result").at("runs").as_array()[0].at("id").as_int64();
            return Iteration(env, id) >= 1;
        },
        90s))
        << ReadFile(env.dir + "/run.err") << env.DaemonStderr();
    pid_t logs_f = SpawnProgram({RALPH_PATH, "logs", std::to_string(id), "-f"}, env.env, env.dir + "/logs.out",
                                env.dir + "/logs.err", project);
    ASSERT_TRUE(WaitFor([&] { return ReadFile(env.dir + "/logs.out").find("iteration started") != std::string::npos; }, 30s))
        << ReadFile(env.dir + "/logs.err");

    EXPECT_EQ(env.StopDaemon(), 0);
    int run_code = WaitExit(run_f, 60s), logs_code = WaitExit(logs_f, 60s);
    EXPECT_EQ(run_code, 6) << ReadFile(env.dir + "/run.out") << ReadFile(env.dir + "/run.err");
    EXPECT_EQ(logs_code, 6) << ReadFile(env.dir + "/logs.out") << ReadFile(env.dir + "/logs.err");
    for (const char* name : {"/run.err", "/logs.err"})
        EXPECT_NE(ReadFile(env.dir + name).find("ralphd stopped while following run " + std::to_string(id) + "; the run goes on"),
                  std::string::npos)
            << name << ": " << ReadFile(env.dir + name);

    // It does go on: the next daemon resumes it.
    env.StartDaemon();
    json::object run = GetRun(env, id);
    EXPECT_EQ(run.at("status"), "running") << json::serialize(run);
    EXPECT_EQ(env.Ralph({"stop", std::to_string(id), "--now"}).exit_code, 0);
    EXPECT_EQ(env.WaitRunEnd(id, 60s).at("status"), "stopped");
}

TEST(E2EFollowExit, CtrlCOfAFollowerSaysTheRunGoesOnAndHowToStopIt)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "long", "SLOW:60000 TEXTONLY\n");
    int64_t id = env.RalphJson({"run", "long"}, project).at("id").as_int64();
    for (std::vector<std::string> follower : {std::vector<std::string>{RALPH_PATH, "logs", std::to_string(id), "-f"},
                                              std::vector<std::string>{RALPH_PATH, "--json", "logs", "long", "-f"}}) {
        pid_t pid = SpawnProgram(follower, env.env, env.dir + "/f.out", env.dir + "/f.err", project);
        ASSERT_TRUE(WaitFor([&] { return ReadFile(env.dir + "/f.out").find("iteration") != std::string::npos; }, 30s))
            << ReadFile(env.dir + "/f.err");
        kill(pid, SIGINT);
        EXPECT_EQ(WaitExit(pid, 30s), 130) << ReadFile(env.dir + "/f.err");
        std::string err = ReadFile(env.dir + "/f.err");
        EXPECT_NE(err.find("run " + std::to_string(id) + " goes on"), std::string::npos) << err;
        EXPECT_NE(err.find("ralph stop " + std::to_string(id)), std::string::npos) << err;
    }
    EXPECT_EQ(GetRun(env, id).at("status"), "running");
    EXPECT_EQ(env.Ralph({"stop", std::to_string(id), "--now"}).exit_code, 0);
    EXPECT_EQ(env.WaitRunEnd(id, 60s).at("status"), "stopped");
}

TEST(E2EFollowExit, LogsFollowJsonPrintsEachEventAsItComesThenTheRun)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "three", "SLOW:300 WRITE:x-{ITERATION}.txt=x COMPLETE_AFTER:3\n");
    int64_t id = env.RalphJson({"run", "three"}, project).at("id").as_int64();
    auto r = env.Ralph({"--json", "logs", "three", "-f"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto lines = JsonLines(r.out);
    ASSERT_GE(lines.size(), 2u) << r.out;
    std::vector<int64_t> started;
    int64_t last_id = 0;
    bool ids_increase = true, saw_state = false;
    for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
        const json::object& e = lines[i];
        ASSERT_TRUE(e.contains("kind")) << "every line before the last is an event: " << r.out;
        if (e.at("kind") == "state") {
            saw_state = true;
            continue;
        }
        if (e.at("id").as_int64() <= last_id) ids_increase = false;
        last_id = e.at("id").as_int64();
        if (e.at("kind") == "iteration.start") started.push_back(e.at("iteration").as_int64());
    }
    EXPECT_TRUE(ids_increase) << r.out;
    EXPECT_TRUE(saw_state) << r.out;
    EXPECT_EQ(started, (std::vector<int64_t>{1, 2, 3})) << r.out;
    EXPECT_EQ(lines.back().at("id"), id);
    EXPECT_EQ(lines.back().at("status"), "completed");

    // The stored log holds exactly the events the follower printed (state events aside).
    auto stored = env.Call("run.events", json::object{{"run", id}});
    ASSERT_TRUE(stored.contains("result")) << json::serialize(stored);
    EXPECT_EQ(stored.at("result").at("last_id").as_int64(), last_id);

    // An iteration outside 1..3 names the range; one inside still works.
    auto out_of_range = env.Ralph({"logs", std::to_string(id), "--iteration", "99"}, project);
    EXPECT_EQ(out_of_range.exit_code, 1) << out_of_range.out;
    EXPECT_NE(out_of_range.err.find("run " + std::to_string(id) + " has iterations 1 to 3; there is no iteration 99"),
              std::string::npos)
        << out_of_range.err;
    EXPECT_TRUE(out_of_range.out.empty()) << out_of_range.out;
    // 0 is never an iteration: the client refuses it as a usage error before asking the daemon.
    EXPECT_EQ(env.Ralph({"logs", std::to_string(id), "--iteration", "0"}).exit_code, 2);
    auto second = env.Ralph({"logs", std::to_string(id), "--iteration", "2"});
    EXPECT_EQ(second.exit_code, 0) << second.err;
    EXPECT_NE(second.out.find("x-2.txt"), std::string::npos) << second.out;
}

}  // namespace
}  // namespace ralph::test
