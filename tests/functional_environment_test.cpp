// A hostile or broken environment: a read-only or full state directory, a database locked by
// another process, clients that connect and say nothing or half a line or never read. Each gives a
// clear error or is survived, and ralphd keeps serving. (Loops through the real opencode in such
// conditions: e2e_environment_test.cpp.)
//
// Read-only and full disks are simulated with a small tmpfs mounted over the state directory,
// which needs root (CAP_SYS_ADMIN); the tests that need it are skipped, saying so, without it.
#include "tests/environment_util.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <sqlite3.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace ralph::test {
namespace {

namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// A project with a task whose runs end at once, without opencode (its prd.json is complete).
std::string MakeQuickTask(TestEnv& env)
{
    std::string project = env.dir + "/proj";
    std::filesystem::create_directories(project + "/.git");
    WriteFile(project + "/tasks/done/prd.json", R"({"userStories": [{"id": "US-1", "passes": true}]})");
    return project;
}

json::object StartQuickRun(TestEnv& env, const std::string& project)
{
    return env.Call("run.start", json::object{{"task", "done"}, {"cwd", project}});
}

/// Waits until a run has ended; returns its status.
std::string WaitEnded(TestEnv& env, int64_t id)
{
    std::string status;
    bool ended = WaitFor(
        [&] {
            auto r = env.Call("run.get", json::object{{"run", id}});
            status = r.contains("result") ? std::string(r.at("result").at("status").as_string()) : "";
            return !status.empty() && status != "running";
        },
        60s);
    if (!ended) ADD_FAILURE() << "run " << id << " had not ended after 60 s (status '" << status << "')";
    return status;
}

TEST(FunctionalEnvironment, ReadOnlyStateDirectoryStopsStartUpSayingSoAndLeavesTheDatabaseIntact)
{
    TestEnv env;
    TmpfsMount state(env.state_dir, "size=4m,mode=0700");
    REQUIRE_MOUNT(state);
    std::string project = MakeQuickTask(env);
    // A database with a finished run, then the disk turns read-only.
    env.StartDaemon();
    ASSERT_TRUE(StartQuickRun(env, project).contains("result"));
    EXPECT_EQ(WaitEnded(env, 1), "completed");
    EXPECT_EQ(env.StopDaemon(), 0);
    ASSERT_TRUE(state.Remount(true)) << std::strerror(errno);

    auto r = RunProgram({RALPHD_PATH}, env.env, "", 30s);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find(env.state_dir + "/ralph.db"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("Read-only file system"), std::string::npos) << r.err;
    // Through the client's autostart: exit 3 (unreachable) with the daemon's reason shown.
    auto client = env.Ralph({"status"}, project, {{"RALPH_NO_AUTOSTART", ""}});
    EXPECT_EQ(client.exit_code, 3) << client.out << client.err;
    EXPECT_NE(client.err.find("Read-only file system"), std::string::npos) << client.err;

    // Writable again: it starts, and the run is still there, unchanged.
    ASSERT_TRUE(state.Remount(false)) << std::strerror(errno);
    env.StartDaemon();
    auto run = env.Call("run.get", json::object{{"run", 1}});
    EXPECT_EQ(run.at("result").at("status"), "completed") << json::serialize(run);
    EXPECT_EQ(env.StopDaemon(), 0);
}

TEST(FunctionalEnvironment, FullStateDiskGivesAClearErrorKeepsServingAndRecoversWhenSpaceReturns)
{
    TestEnv env;
    TmpfsMount state(env.state_dir, "size=2m,mode=0700");
    REQUIRE_MOUNT(state);
    std::string project = MakeQuickTask(env);
    env.StartDaemon();
    ASSERT_TRUE(StartQuickRun(env, project).contains("result"));

    FillDisk(env.state_dir + "/filler");
    // Writes fail with a message that says what to do; reads and pings go on.
    json::object refused;
    for (int i = 0; i < 20 && !refused.contains("error"); ++i) refused = StartQuickRun(env, project);
    ASSERT_TRUE(refused.contains("error")) << "the disk never filled up";
    std::string message(refused.at("error").at("message").as_string());
    EXPECT_NE(message.find("full"), std::string::npos) << message;
    EXPECT_NE(message.find("free some space"), std::string::npos) << message;
    EXPECT_EQ(env.Call("daemon.ping").at("result"), "pong");
    EXPECT_TRUE(env.Call("run.list", json::object{{"all", true}}).contains("result"));

    std::filesystem::remove(env.state_dir + "/filler");
    auto again = StartQuickRun(env, project);
    ASSERT_TRUE(again.contains("result")) << json::serialize(again);
    EXPECT_EQ(WaitEnded(env, again.at("result").at("id").as_int64()), "completed");
    EXPECT_EQ(env.StopDaemon(), 0);
    EXPECT_EQ(IntegrityCheck(env.state_dir + "/ralph.db"), "ok");
}

TEST(FunctionalEnvironment, ReaderHoldingATransactionNeverBlocksTheDaemon)
{
    TestEnv env;
    std::string project = MakeQuickTask(env);
    env.StartDaemon();
    ASSERT_TRUE(StartQuickRun(env, project).contains("result"));
    // An outside reader in the middle of a read transaction: WAL lets the writer go on.
    SqliteHolder reader(env.state_dir + "/ralph.db", "BEGIN; SELECT COUNT(*) FROM runs;");
    ASSERT_TRUE(reader.ok()) << reader.error();
    auto start = SteadyClock::now();
    for (int i = 0; i < 5; ++i) {
        auto r = StartQuickRun(env, project);
        ASSERT_TRUE(r.contains("result")) << json::serialize(r);
    }
    EXPECT_LT(SteadyClock::now() - start, 2s);
    reader.Release();
    EXPECT_EQ(env.Call("run.list", json::object{{"all", true}}).at("result").at("runs").as_array().size(), 6u);
}

TEST(FunctionalEnvironment, ExclusiveLockHeldByAnotherProcessGivesAClearErrorThenEverythingGoesOn)
{
    TestEnv env;
    std::string project = MakeQuickTask(env);
    env.StartDaemon();
    ASSERT_TRUE(StartQuickRun(env, project).contains("result"));
    // Ended first: the run's own writes would otherwise meet the lock and hold the daemon's thread.
    EXPECT_EQ(WaitEnded(env, 1), "completed");

    // Held longer than the daemon's busy timeout (5 s): its writes give up with a clear error.
    SqliteHolder locker(env.state_dir + "/ralph.db", "BEGIN EXCLUSIVE;");
    ASSERT_TRUE(locker.ok()) << locker.error();
    auto start = SteadyClock::now();
    auto refused = StartQuickRun(env, project);
    auto waited = SteadyClock::now() - start;
    ASSERT_TRUE(refused.contains("error")) << json::serialize(refused);
    std::string message(refused.at("error").at("message").as_string());
    EXPECT_NE(message.find("locked"), std::string::npos) << message;
    EXPECT_NE(message.find("another process"), std::string::npos) << message;
    EXPECT_LT(waited, 8s);
    // Reads still answer while the lock is held (WAL), and so does everything else.
    start = SteadyClock::now();
    EXPECT_TRUE(env.Call("run.list", json::object{{"all", true}}).contains("result"));
    EXPECT_EQ(env.Call("daemon.ping").at("result"), "pong");
    EXPECT_LT(SteadyClock::now() - start, 1s);

    // A lock released within the busy timeout only delays a write.
    std::thread release([&] {
        std::this_thread::sleep_for(1500ms);
        locker.Release();
    });
    auto delayed = StartQuickRun(env, project);
    release.join();
    EXPECT_TRUE(delayed.contains("result")) << json::serialize(delayed);
    EXPECT_EQ(env.Call("run.list", json::object{{"all", true}}).at("result").at("runs").as_array().size(), 2u);
    EXPECT_EQ(env.StopDaemon(), 0);
    EXPECT_EQ(IntegrityCheck(env.state_dir + "/ralph.db"), "ok");
}

TEST(FunctionalEnvironment, SilentHalfLineAndNonReadingClientsDoNotHoldUpOthers)
{
    TestEnv env;
    std::string project = MakeQuickTask(env);
    env.StartDaemon({"--client-timeout", "3s"});
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(StartQuickRun(env, project).contains("result"));
    std::vector<int> fds;
    for (int i = 0; i < 100; ++i) {
        int fd = RawConnect(env.socket);
        ASSERT_GE(fd, 0);
        if (i % 2) send(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"meth", 30, MSG_NOSIGNAL);
        fds.push_back(fd);
    }
    // One client pipelines thousands of requests and never reads a reply: its socket fills up.
    int greedy = RawConnect(env.socket);
    ASSERT_GE(greedy, 0);
    std::string request = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"run.list\",\"params\":{\"all\":true}}\n";
    std::string burst;
    for (int i = 0; i < 2000; ++i) burst += request;
    std::thread writer([&] { send(greedy, burst.data(), burst.size(), MSG_NOSIGNAL); });

    std::vector<double> latencies;
    for (int i = 0; i < 50; ++i) {
        auto t = SteadyClock::now();
        EXPECT_EQ(env.Call("daemon.ping").at("result"), "pong");
        EXPECT_TRUE(env.Call("run.list").contains("result"));
        latencies.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count());
    }
    std::sort(latencies.begin(), latencies.end());
    std::cout << "[ env      ] ping + run.list beside 100 idle clients and one that never reads: p50 "
              << latencies[latencies.size() / 2] << " ms, max " << latencies.back() << " ms\n";
    EXPECT_LT(latencies.back(), 1000);
    // Idle ones are closed after the client timeout; the daemon is fine.
    char buf[16];
    EXPECT_EQ(recv(fds[0], buf, sizeof buf, 0), 0);
    shutdown(greedy, SHUT_RDWR);
    writer.join();
    close(greedy);
    for (int fd : fds) close(fd);
    EXPECT_EQ(env.Call("daemon.ping").at("result"), "pong");
    EXPECT_EQ(env.StopDaemon(), 0);
}

}  // namespace
}  // namespace ralph::test
