// Loops through the real opencode in a hostile or broken environment: the state disk filling up or
// locked mid-run, opencode missing, a task directory deleted mid-run, a project that is not a git
// repository. Runs end with a reason that says what happened, or go on once the trouble is gone,
// and ralphd keeps serving throughout.
#include "tests/environment_util.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

namespace ralph::test {
namespace {

namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

int64_t Iteration(E2EEnv& env, int64_t id)
{
    auto reply = env.Call("run.get", json::object{{"run", id}});
    return reply.contains("result") ? reply.at("result").at("iteration").as_int64() : -1;
}

/// Iterations numbered 1..n, every one ended.
void ExpectContiguousAndEnded(const json::object& run)
{
    int n = 1;
    for (const auto& it : run.at("iterations").as_array()) {
        EXPECT_EQ(it.at("n").as_int64(), n++) << json::serialize(run);
        EXPECT_TRUE(it.at("outcome").is_string() && !it.at("outcome").as_string().empty())
            << "iteration " << it.at("n") << " never ended: " << json::serialize(run);
    }
    EXPECT_EQ(run.at("iteration").as_int64(), n - 1);
}

TEST(E2EEnvironment, StateDiskFullMidRunPausesTheLoopsAndTheyGoOnWhenSpaceReturns)
{
    E2EEnv env;
    TmpfsMount state(env.state_dir, "size=3m,mode=0700");
    REQUIRE_MOUNT(state);
    env.StartDaemon();
    std::vector<std::string> projects = {env.MakeProject("alpha"), env.MakeProject("beta")};
    std::vector<int64_t> ids;
    for (const auto& p : projects) {
        env.AddTask(p, "t", "SLOW:400 WRITE:out/{ITERATION}.txt=x KEY:{PROJECT_ROOT}-{RUN_ID} COMPLETE_AFTER:6\n");
        ids.push_back(env.RalphJson({"run", "t", "-n", "10"}, p).at("id").as_int64());
    }
    for (int64_t id : ids) ASSERT_TRUE(WaitFor([&] { return Iteration(env, id) >= 2; }, 90s)) << env.DaemonStderr();

    FillDisk(env.state_dir + "/filler");
    std::this_thread::sleep_for(6s);  // iterations end meanwhile, and cannot be recorded
    auto frozen = env.Call("run.list", json::object{{"all", true}});
    ASSERT_TRUE(frozen.contains("result")) << "ralphd stopped serving with a full disk";
    EXPECT_EQ(env.Call("daemon.ping").at("result"), "pong");
    std::filesystem::remove(env.state_dir + "/filler");

    for (int64_t id : ids) {
        auto run = env.WaitRunEnd(id, 120s);
        EXPECT_EQ(run.at("status"), "completed") << json::serialize(run) << env.DaemonStderr();
        ExpectContiguousAndEnded(run);
    }
    EXPECT_NE(env.DaemonStderr().find("free some space"), std::string::npos);
    if (getenv("RALPH_TEST_SHOW_LOG")) std::cerr << env.DaemonStderr();
    EXPECT_EQ(env.StopDaemon(), 0);
    EXPECT_EQ(IntegrityCheck(env.state_dir + "/ralph.db"), "ok");
}

TEST(E2EEnvironment, DatabaseLockedAcrossTheEndOfAnIterationDelaysTheRunButLosesNothing)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "SLOW:4000 COMPLETE_AFTER:2\n");
    int64_t id = env.RalphJson({"run", "t", "-n", "4"}, project).at("id").as_int64();
    ASSERT_TRUE(WaitFor([&] { return Iteration(env, id) >= 1; }, 90s)) << env.DaemonStderr();
    {
        // Held by another process from the middle of iteration 1 until well after its end, longer
        // than the daemon's 5 s busy timeout: recording the iteration's end fails and is retried.
        std::this_thread::sleep_for(1s);
        SqliteHolder locker(env.state_dir + "/ralph.db", "BEGIN EXCLUSIVE;");
        ASSERT_TRUE(locker.ok()) << locker.error();
        std::this_thread::sleep_for(25s);
    }
    auto run = env.WaitRunEnd(id, 120s);
    EXPECT_EQ(run.at("status"), "completed") << json::serialize(run) << env.DaemonStderr();
    ExpectContiguousAndEnded(run);
    std::vector<std::string> outcomes;
    for (const auto& it : run.at("iterations").as_array()) outcomes.push_back(json::serialize(it.at("outcome")));
    EXPECT_EQ(outcomes, (std::vector<std::string>{"\"continue\"", "\"complete\""})) << env.DaemonStderr();
    EXPECT_NE(env.DaemonStderr().find("another process holds a lock"), std::string::npos);
    EXPECT_EQ(IntegrityCheck(env.state_dir + "/ralph.db"), "ok");
}

TEST(E2EEnvironment, MissingOpencodeFailsTheRunSayingWhatToDoAndAnInstallIsPickedUpWithoutRestart)
{
    E2EEnv env;
    std::string missing = env.dir + "/bin/opencode";
    env.env["RALPH_OPENCODE"] = missing;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "COMPLETE_AFTER:1\n");
    auto r = env.Ralph({"run", "t", "-f"}, project);
    EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
    json::value run = env.RalphJson({"show", "t"}, project);
    EXPECT_EQ(run.at("status"), "failed");
    EXPECT_EQ(run.at("reason"), "server_unavailable");
    auto status = env.RalphJson({"server", "status"});
    std::string error(status.at("last_error").as_string());
    EXPECT_NE(error.find(missing), std::string::npos) << error;
    EXPECT_EQ(env.Call("daemon.ping").at("result"), "pong");

    // Installed afterwards: an explicit start clears `fatal`, and the next run goes through.
    std::filesystem::create_directories(env.dir + "/bin");
    std::filesystem::create_symlink(OpencodeBinary(), missing);
    auto start = env.Ralph({"server", "start"});
    EXPECT_EQ(start.exit_code, 0) << start.out << start.err;
    r = env.Ralph({"run", "t", "-f"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(E2EEnvironment, TaskDirectoryOrProjectDeletedMidRunFailsTheRunSayingSo)
{
    E2EEnv env;
    env.StartDaemon();
    std::string keep = env.MakeProject("keep");
    std::string doomed = env.MakeProject("doomed");
    env.AddTask(keep, "gone", "SLOW:1500 TEXTONLY\n");
    env.AddTask(keep, "stays", "SLOW:300 COMPLETE_AFTER:2\n");
    env.AddTask(doomed, "t", "SLOW:1500 TEXTONLY\n");
    int64_t gone = env.RalphJson({"run", "gone", "-n", "5"}, keep).at("id").as_int64();
    int64_t whole = env.RalphJson({"run", "t", "-n", "5"}, doomed).at("id").as_int64();
    for (int64_t id : {gone, whole}) ASSERT_TRUE(WaitFor([&] { return Iteration(env, id) >= 1; }, 90s));
    std::filesystem::remove_all(keep + "/tasks/gone");
    std::filesystem::remove_all(doomed);

    for (int64_t id : {gone, whole}) {
        auto run = env.WaitRunEnd(id, 60s);
        EXPECT_EQ(run.at("status"), "failed") << json::serialize(run);
        EXPECT_EQ(run.at("reason"), "task_invalid");
        ExpectContiguousAndEnded(run);
        auto events = env.Call("run.events", json::object{{"run", id}}).at("result").at("events").as_array();
        std::string end = json::serialize(events.back());
        EXPECT_NE(end.find("no longer exists"), std::string::npos) << end;
    }
    // The daemon and the server serve the other runs as before.
    auto r = env.Ralph({"run", "stays", "-f"}, keep);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(E2EEnvironment, TaskOutsideAGitRepositoryRunsInItsGrandparent)
{
    E2EEnv env;
    env.StartDaemon();
    std::string plain = env.dir + "/plain";
    env.AddTask(plain, "t", "WRITE:made-by-agent.txt=here COMPLETE_AFTER:1\n");
    ASSERT_FALSE(PathExists(plain + "/.git"));
    auto r = env.Ralph({"--json", "run", "t", "-f"}, plain + "/tasks");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    json::value run = env.RalphJson({"show", "t"}, plain);
    EXPECT_EQ(run.at("project"), json::value(plain));
    EXPECT_EQ(run.at("status"), "completed");
    EXPECT_EQ(ReadFile(plain + "/made-by-agent.txt"), "here");
}

}  // namespace
}  // namespace ralph::test
