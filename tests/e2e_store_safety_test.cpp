// The state database under attack while loops run through the real opencode: deleted under
// ralphd (put back within seconds, nothing lost, ids never reused), and unwritable because the
// disk is full while an iteration's text and tool lines arrive (kept, and in `ralph logs` after).
// One functional test without opencode: deleted just before ralphd stops, it is put back on the way out.
#include "tests/environment_util.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>

namespace ralph::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

int64_t Iteration(E2EEnv& env, int64_t id)
{
    auto reply = env.Call("run.get", json::object{{"run", id}});
    return reply.contains("result") ? reply.at("result").at("iteration").as_int64() : -1;
}

bool StderrHas(const E2EEnv& env, const std::string& text)
{
    return env.DaemonStderr().find(text) != std::string::npos;
}

std::set<int64_t> RunIds(const json::value& status)
{
    std::set<int64_t> ids;
    for (const auto& run : status.at("runs").as_array()) ids.insert(run.at("id").as_int64());
    return ids;
}

TEST(E2EStoreSafety, DatabaseDeletedWhileLoopsRunIsPutBackWithinSecondsAndNoIdIsReused)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "quick", "COMPLETE_AFTER:1\n");
    env.AddTask(project, "slow", "SLOW:1500 KEY:{RUN_ID} COMPLETE_AFTER:3\n");
    auto quick = env.Ralph({"run", "quick", "-f"}, project);
    ASSERT_EQ(quick.exit_code, 0) << quick.out << quick.err;
    int64_t slow = env.RalphJson({"run", "slow", "-n", "5"}, project).at("id").as_int64();
    ASSERT_TRUE(WaitFor([&] { return Iteration(env, slow) >= 1; }, 90s)) << env.DaemonStderr();

    const std::string db = env.state_dir + "/ralph.db";
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db + suffix);
    ASSERT_FALSE(PathExists(db));
    ASSERT_TRUE(WaitFor([&] { return PathExists(db); }, 10s)) << "the deleted database was not put back\n"
                                                               << env.DaemonStderr();
    // Logged once it is back and reopened, a moment after the file appears.
    EXPECT_TRUE(WaitFor([&] { return StderrHas(env, "was deleted while ralphd was running"); }, 10s))
        << env.DaemonStderr();

    // The loop goes on into the database at the path, and a client sees it all as before.
    auto run = env.WaitRunEnd(slow, 120s);
    EXPECT_EQ(run.at("status"), "completed") << json::serialize(run) << env.DaemonStderr();
    EXPECT_EQ(run.at("iterations").as_array().size(), 3u) << json::serialize(run);
    EXPECT_EQ(RunIds(env.RalphJson({"status", "--all"}, project)), (std::set<int64_t>{slow - 1, slow}));

    // What is at the path is what a new daemon starts from: every run, and the next id.
    EXPECT_EQ(env.StopDaemon(), 0);
    EXPECT_EQ(IntegrityCheck(db), "ok");
    env.StartDaemon();
    EXPECT_EQ(RunIds(env.RalphJson({"status", "--all"}, project)), (std::set<int64_t>{slow - 1, slow}));
    auto events = env.Call("run.events", json::object{{"run", slow}});
    ASSERT_TRUE(events.contains("result")) << json::serialize(events);
    EXPECT_EQ(json::serialize(events.at("result").at("events").as_array().back().at("kind")), "\"run.end\"");
    auto next = env.RalphJson({"run", "quick"}, project);
    EXPECT_EQ(next.at("id").as_int64(), slow + 1) << json::serialize(next);
    EXPECT_EQ(env.WaitRunEnd(slow + 1, 120s).at("status"), "completed");
}

TEST(FunctionalStoreSafety, DatabaseDeletedJustBeforeRalphdStopsIsPutBackOnTheWayOut)
{
    TestEnv env;
    std::string project = env.dir + "/proj";
    std::filesystem::create_directories(project + "/.git");
    // Complete from the start: the run ends at once, without opencode.
    WriteFile(project + "/tasks/done/prd.json", R"({"userStories": [{"id": "US-1", "passes": true}]})");
    env.StartDaemon();
    auto started = env.Call("run.start", json::object{{"task", "done"}, {"cwd", project}});
    ASSERT_TRUE(started.contains("result")) << json::serialize(started);
    const std::string db = env.state_dir + "/ralph.db";
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db + suffix);
    EXPECT_EQ(env.StopDaemon(), 0);  // at once: the last check on the way out puts it back

    ASSERT_TRUE(PathExists(db)) << env.DaemonStderr();
    EXPECT_EQ(IntegrityCheck(db), "ok");
    env.StartDaemon();
    auto run = env.Call("run.get", json::object{{"run", 1}});
    ASSERT_TRUE(run.contains("result")) << json::serialize(run);
    EXPECT_EQ(run.at("result").at("task"), "done");
}

TEST(E2EStoreSafety, RunLogLinesArrivingWhileTheDiskIsFullAreKeptAndShownByRalphLogs)
{
    E2EEnv env;
    TmpfsMount state(env.state_dir, "size=3m,mode=0700");
    REQUIRE_MOUNT(state);
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    // The bash call waits for the test: its result and the answer after it arrive while the disk
    // is full.
    env.AddTask(project, "t",
                "BASH:touch " + project + "/ready; while [ ! -e " + project + "/go ]; do sleep 0.1; done\n"
                "COMPLETE_AFTER:1\n");
    int64_t id = env.RalphJson({"run", "t", "-n", "2"}, project).at("id").as_int64();
    ASSERT_TRUE(WaitFor([&] { return PathExists(project + "/ready"); }, 90s)) << env.DaemonStderr();

    FillDisk(env.state_dir + "/filler");
    WriteFile(project + "/go", "");
    // A log event met the full disk: kept (or, before, dropped with "cannot record event").
    auto met_full_disk = [&] {
        return StderrHas(env, "keeping them in memory") || StderrHas(env, "cannot record event");
    };
    ASSERT_TRUE(WaitFor(met_full_disk, 60s)) << "no log event met the full disk\n" << env.DaemonStderr();
    EXPECT_TRUE(StderrHas(env, "keeping them in memory")) << env.DaemonStderr();
    std::filesystem::remove(env.state_dir + "/filler");

    auto run = env.WaitRunEnd(id, 120s);
    EXPECT_EQ(run.at("status"), "completed") << json::serialize(run) << env.DaemonStderr();
    EXPECT_TRUE(WaitFor([&] { return StderrHas(env, "wrote the run log events kept in memory"); }, 10s))
        << env.DaemonStderr();

    std::vector<std::string> kinds;
    auto events = env.Call("run.events", json::object{{"run", id}});
    ASSERT_TRUE(events.contains("result")) << json::serialize(events);
    for (const auto& e : events.at("result").at("events").as_array())
        kinds.push_back(std::string(e.at("kind").as_string()));
    // Every line of the iteration, in order: the tool's result and the answer after it included.
    EXPECT_EQ(kinds, (std::vector<std::string>{"run.start", "iteration.start", "text", "tool", "text", "iteration.end",
                                               "run.end"}))
        << json::serialize(events);
    auto logs = env.Ralph({"logs", std::to_string(id)}, project);
    EXPECT_EQ(logs.exit_code, 0) << logs.err;
    EXPECT_NE(logs.out.find("tool bash"), std::string::npos) << logs.out;
    EXPECT_NE(logs.out.find("Done."), std::string::npos) << logs.out;
    EXPECT_EQ(env.StopDaemon(), 0);
    EXPECT_EQ(IntegrityCheck(env.state_dir + "/ralph.db"), "ok");
}

}  // namespace
}  // namespace ralph::test
