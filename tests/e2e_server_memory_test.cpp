// SPEC §8 server memory, end to end through the real ralph, ralphd, opencode 1.18.33 and the
// scripted model: the managed server's memory is sampled and shown in `ralph server status`; above
// a (test-low) server.max_memory the server is restarted between iterations, the server's history
// says why, and no iteration is interrupted.
#include "tests/harness.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

namespace ralph::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

/// The details of the server history's events named `event`, read from the state database.
std::vector<std::string> ServerHistory(const E2EEnv& env, const std::string& event)
{
    std::vector<std::string> out;
    sqlite3* db = nullptr;
    if (sqlite3_open_v2((env.state_dir + "/ralph.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        sqlite3_close(db);
        ADD_FAILURE() << "cannot open the state database";
        return out;
    }
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "SELECT detail FROM server_history WHERE event = ? ORDER BY id", -1, &s, nullptr);
    sqlite3_bind_text(s, 1, event.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(s) == SQLITE_ROW) out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

TEST(E2EServerMemory, MemoryIsShownAndAboveMaxMemoryTheServerRestartsBetweenIterations)
{
    // 1 MB: any opencode server is above it, so it restarts after every iteration. Memory is
    // sampled with each health check, once a second here; their timeout is then 500 ms, which a
    // loaded machine can miss a few times in a row: the test is about memory, not health.
    E2EEnv env(true, "[server]\nmax_memory = 1M\nhealth_interval = 1s\nhealth_failures = 30\n");
    env.StartDaemon();
    ASSERT_EQ(env.Ralph({"server", "start"}).exit_code, 0);
    ASSERT_TRUE(WaitFor([&] { return env.Ralph({"server", "status"}).out.find("memory:") != std::string::npos; }, 30s))
        << env.Ralph({"server", "status"}).out;
    json::value status = env.RalphJson({"server", "status"});
    ASSERT_TRUE(status.at("memory").is_int64()) << json::serialize(status);
    EXPECT_GT(status.at("memory").as_int64(), 20 << 20);  // an opencode server is tens of MB at least

    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "SLOW:1500 TEXTONLY\n");
    json::value started = env.RalphJson({"run", "t", "-n", "3"}, project);
    json::object run = env.WaitRunEnd(started.at("id").as_int64(), 240s);
    EXPECT_EQ(run.at("status"), "stopped") << json::serialize(run);
    EXPECT_EQ(run.at("reason"), "max_iterations");
    const json::array& its = run.at("iterations").as_array();
    ASSERT_EQ(its.size(), 3u) << json::serialize(run);
    std::string other_ends;  // why the server went away otherwise, if it did
    for (const char* event : {"unhealthy", "exited"})
        for (const std::string& why : ServerHistory(env, event)) other_ends += std::string("\n") + event + ": " + why;
    for (const auto& it : its) EXPECT_EQ(it.at("outcome"), "continue") << json::serialize(it) << other_ends;  // none interrupted
    // Restarted for its memory, and its history says so.
    std::vector<std::string> stops = ServerHistory(env, "stopped");
    int for_memory = 0;
    for (const std::string& why : stops) for_memory += why.find("above server.max_memory") != std::string::npos;
    EXPECT_GE(for_memory, 1) << "server stops: " << stops.size();
    EXPECT_LE(for_memory, 3);  // at most once per iteration: a fresh server is not restarted before it worked
}

TEST(E2EServerMemory, AnIdleProjectsInstanceIsDisposedAndANewRunBringsItBack)
{
    E2EEnv env(true, "[server]\ninstance_idle = 1s\n");
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "TEXTONLY\n");
    json::value first = env.RalphJson({"run", "t", "-n", "1"}, project);
    EXPECT_EQ(env.WaitRunEnd(first.at("id").as_int64()).at("reason"), "max_iterations");
    ASSERT_TRUE(WaitFor([&] { return env.DaemonStderr().find("disposed the opencode instance of " + project) !=
                                     std::string::npos; },
                        60s))
        << env.DaemonStderr();
    // The next run of the project works as before: opencode makes the instance again.
    json::value second = env.RalphJson({"run", "t", "-n", "1"}, project);
    json::object run = env.WaitRunEnd(second.at("id").as_int64());
    EXPECT_EQ(run.at("reason"), "max_iterations");
    ASSERT_EQ(run.at("iterations").as_array().size(), 1u);
    EXPECT_EQ(run.at("iterations").as_array()[0].at("outcome"), "continue");
}

}  // namespace
}  // namespace ralph::test
