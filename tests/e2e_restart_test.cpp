// Clean restarts: SIGTERM to a ralphd with loops in flight aborts their sessions in opencode,
// stops the server and its tools, leaves the runs running (their iteration `interrupted`), exits 0
// within server.stop_timeout plus a margin; the next start resumes the runs.
#include "daemon/proc_scan.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <sqlite3.h>

#include <csignal>
#include <filesystem>
#include <sys/stat.h>
#include <thread>

namespace ralph::test {
namespace {

namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// Every row of a query on a database opened read-only, columns joined by '|'.
std::vector<std::string> Rows(const std::string& path, const std::string& sql)
{
    std::vector<std::string> rows;
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        ADD_FAILURE() << "cannot open " << path;
        sqlite3_close(db);
        return rows;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
        ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
    } else {
        while (sqlite3_step(s) == SQLITE_ROW) {
            std::string row;
            for (int c = 0; c < sqlite3_column_count(s); ++c) {
                auto* t = sqlite3_column_text(s, c);
                row += std::string(c ? "|" : "") + (t ? reinterpret_cast<const char*>(t) : "");
            }
            rows.push_back(row);
        }
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rows;
}

/// Live (not zombie) processes whose environment has this HOME, but `except`: opencode and its tools.
std::vector<int> ProcessesWithHome(const std::string& home, int except = 0)
{
    ProcFs proc;
    std::vector<int> out;
    for (int pid : proc.Pids()) {
        if (pid == except || !proc.EnvironHas(pid, "HOME=" + home)) continue;
        auto st = proc.Stat(pid);
        if (st && st->state != 'Z') out.push_back(pid);
    }
    return out;
}

int64_t Iteration(E2EEnv& env, int64_t id)
{
    auto reply = env.Call("run.get", json::object{{"run", id}});
    return reply.contains("result") ? reply.at("result").at("iteration").as_int64() : -1;
}

TEST(E2ERestart, SigtermAbortsTheSessionsStopsTheServerAndTheRunsResumeOnTheNextStart)
{
    E2EEnv env;
    pid_t daemon = env.StartDaemon();
    // Each iteration is a tool call (a bash sleep) that takes long enough to be cut short; the
    // second iteration of each run completes.
    std::vector<std::string> projects = {env.MakeProject("alpha"), env.MakeProject("beta")};
    std::vector<int64_t> ids;
    for (const auto& p : projects) {
        env.AddTask(p, "long", "BASH:\"test {ITERATION} = 1 && sleep 30; true\" COMPLETE_AFTER:2\n");
        ids.push_back(env.RalphJson({"run", "long", "-n", "4"}, p).at("id").as_int64());
    }
    for (int64_t id : ids) ASSERT_TRUE(WaitFor([&] { return Iteration(env, id) >= 1; }, 60s)) << env.DaemonStderr();
    // The tool runs: `sleep 30` under the server, in each project.
    ASSERT_TRUE(WaitFor(
        [&] {
            int sleeps = 0;
            for (int pid : ProcessesWithHome(env.home)) {
                auto cmd = ProcFs().Cmdline(pid);
                sleeps += !cmd.empty() && cmd[0] == "sleep";
            }
            return sleeps == 2;
        },
        30s))
        << "the scripted bash tools never started";
    int server = static_cast<int>(env.RalphJson({"server", "status"}).at("pid").as_int64());
    ASSERT_GT(server, 0);

    auto start = SteadyClock::now();
    ASSERT_EQ(kill(daemon, SIGTERM), 0);
    int code = WaitExit(daemon, 60s);
    auto took = SteadyClock::now() - start;
    EXPECT_EQ(code, 0) << env.DaemonStderr();
    // stop_timeout is 10s by default; a clean stop takes far less.
    EXPECT_LT(took, 15s);
    std::cout << "[ restart  ] SIGTERM to exit: " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
              << " ms with 2 iterations in flight\n";
    EXPECT_FALSE(ProcessAlive(server));
    EXPECT_TRUE(ProcessesWithHome(env.home).empty()) << "the server or a tool outlived ralphd";

    // Left to resume: still running, the iteration in flight interrupted (never failed).
    std::string db = env.state_dir + "/ralph.db";
    for (int64_t id : ids) {
        std::string sid = std::to_string(id);
        EXPECT_EQ(Rows(db, "SELECT status, reason FROM runs WHERE id = " + sid), std::vector<std::string>{"running|"});
        EXPECT_EQ(Rows(db, "SELECT n, outcome, error FROM iterations WHERE run_id = " + sid),
                  std::vector<std::string>{"1|interrupted|ralphd stopped during this iteration"});
    }
    // In opencode, each session was aborted (its answer ends with MessageAbortedError), not cut
    // off by the server's death (an answer that never completes, without error).
    std::string opencode_db = env.dir + "/data/opencode/opencode.db";
    for (const auto& session : Rows(db, "SELECT session_id FROM iterations")) {
        auto messages = Rows(opencode_db, "SELECT * FROM message");
        int aborted = 0, of_session = 0;
        for (const auto& m : messages) {
            if (m.find(session) == std::string::npos) continue;
            ++of_session;
            aborted += m.find("MessageAbortedError") != std::string::npos;
        }
        EXPECT_GT(of_session, 0) << session;
        EXPECT_EQ(aborted, 1) << "session " << session << " was not aborted";
    }

    // The next start picks the runs up: iteration 2 completes each.
    env.StartDaemon();
    for (int64_t id : ids) {
        auto run = env.WaitRunEnd(id, 120s);
        EXPECT_EQ(run.at("status"), "completed") << json::serialize(run);
        std::vector<std::string> outcomes;
        for (const auto& it : run.at("iterations").as_array()) outcomes.emplace_back(it.at("outcome").as_string());
        EXPECT_EQ(outcomes, (std::vector<std::string>{"interrupted", "complete"}));
    }
}

TEST(E2ERestart, SigtermWhileTheServerIsStartingExitsPromptlyAndLeavesNothing)
{
    E2EEnv env;
    // The real opencode behind a gate: `serve` waits for the gate file, so the server is certainly
    // still starting (launched, not listening) when the SIGTERM comes, however fast opencode is.
    std::string gate = env.dir + "/serve-gate";
    std::string wrapper = env.dir + "/gated-opencode";
    WriteFile(wrapper, "#!/bin/sh\nif [ \"$1\" = serve ]; then while [ ! -e '" + gate +
                           "' ]; do sleep 0.05; done; fi\nexec '" + OpencodeBinary() + "' \"$@\"\n");
    ASSERT_EQ(chmod(wrapper.c_str(), 0755), 0);
    env.env["RALPH_OPENCODE"] = wrapper;
    pid_t daemon = env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "COMPLETE_AFTER:1\n");
    int64_t id = env.RalphJson({"run", "t"}, project).at("id").as_int64();
    // The server is being launched for the run: stop now, before it is healthy.
    ASSERT_TRUE(WaitFor([&] { return !ProcessesWithHome(env.home, daemon).empty(); }, 60s))
        << "ralphd never launched the server for run " << id << "\n" << env.DaemonStderr();
    EXPECT_EQ(env.RalphJson({"server", "status"}).at("state"), "starting");
    auto start = SteadyClock::now();
    ASSERT_EQ(kill(daemon, SIGTERM), 0);
    EXPECT_EQ(WaitExit(daemon, 60s), 0) << env.DaemonStderr();
    auto took = SteadyClock::now() - start;
    EXPECT_LT(took, 15s);
    std::cout << "[ restart  ] SIGTERM to exit while the server starts: "
              << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
    EXPECT_TRUE(WaitFor([&] { return ProcessesWithHome(env.home).empty(); }, 5s)) << "opencode outlived ralphd";
    auto rows = Rows(env.state_dir + "/ralph.db", "SELECT status FROM runs WHERE id = " + std::to_string(id));
    EXPECT_EQ(rows, std::vector<std::string>{"running"});
    // No iteration was begun for a server that came up while ralphd was stopping.
    EXPECT_EQ(Rows(env.state_dir + "/ralph.db", "SELECT COUNT(*) FROM iterations"), std::vector<std::string>{"0"});
    WriteFile(gate, "");
    env.StartDaemon();
    auto run = env.WaitRunEnd(id, 120s);
    EXPECT_EQ(run.at("status"), "completed") << json::serialize(run) << "\n" << env.DaemonStderr();
}

}  // namespace
}  // namespace ralph::test
