// The earlier Python ralph's registry (sessions.db) is imported as finished runs: each legacy status
// maps as specified, importing twice imports nothing twice, the legacy file is never modified (not a
// byte, and no -wal, -shm or -journal beside it), and a file of the wrong shape gives an error
// naming what is missing.
#include "daemon/legacy_import.h"
#include "daemon/store.h"
#include "tests/harness.h"
#include "tests/legacy_session_schemas.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <csignal>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>

namespace ralph {
namespace {

namespace fs = std::filesystem;
using test::kLegacyEras;
using test::kLegacySchema;
using test::LegacyColumns;
using test::LegacyEra;
using test::LegacyInsert;
using test::ReadFile;
using test::WriteFile;

class UnitLegacyImport : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/ralph-legacy-XXXXXX";
        dir_ = mkdtemp(tmpl);
        fs::create_directories(dir_ + "/legacy");
        legacy_ = dir_ + "/legacy/sessions.db";
        // A project that still exists, in git, and one whose directory is gone.
        fs::create_directories(dir_ + "/repo/.git");
        fs::create_directories(dir_ + "/repo/tasks/alive-task");
        store_ = std::make_unique<RunStore>(dir_ + "/ralph.db");
    }
    void TearDown() override
    {
        store_.reset();
        fs::remove_all(dir_);
    }

    /// Creates a legacy database with `schema`, runs `sql` in it, and closes it (journal gone).
    void MakeLegacy(const std::string& schema, const std::string& sql)
    {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open(legacy_.c_str(), &db), SQLITE_OK);
        char* err = nullptr;
        int rc = sqlite3_exec(db, (schema + sql).c_str(), nullptr, nullptr, &err);
        std::string msg = err ? err : "";
        sqlite3_free(err);
        sqlite3_close(db);
        ASSERT_EQ(rc, SQLITE_OK) << msg;
    }

    static std::string Row(const std::string& name, const std::string& dir, int pid, const std::string& status,
                           const std::string& started, const std::string& updated, int iteration, int port,
                           const std::string& session)
    {
        return "INSERT INTO sessions (task_name, task_dir, pid, tmux_session, agent, status, started_at, updated_at, "
               "iteration, max_iterations, session_type, server_port, opencode_session_id) VALUES ('" +
               name + "', '" + dir + "', " + std::to_string(pid) + ", 'ralph-" + name + "', 'opencode', '" + status +
               "', " + started + ", " + updated + ", " + std::to_string(iteration) + ", 10, 'opencode-server', " +
               (port ? std::to_string(port) : "NULL") + ", '" + session + "');\n";
    }

    std::set<std::string> LegacyDirListing() const
    {
        std::set<std::string> out;
        for (const auto& e : fs::directory_iterator(dir_ + "/legacy")) out.insert(e.path().filename().string());
        return out;
    }

    LegacyImportReport Import(std::set<int> alive = {})
    {
        LegacyImportOptions options;
        options.path = legacy_;
        options.worker_alive = [alive](int pid) { return alive.count(pid) > 0; };
        return ImportLegacyDatabase(*store_, options);
    }

    const LegacyEntry& EntryOf(const LegacyImportReport& r, const std::string& task)
    {
        for (const auto& e : r.entries)
            if (e.task_name == task) return e;
        ADD_FAILURE() << "no entry for " << task;
        static LegacyEntry none;
        return none;
    }

    std::string dir_, legacy_;
    std::unique_ptr<RunStore> store_;
};

TEST_F(UnitLegacyImport, EachStatusImportsAsSpecifiedTwiceIsIdempotentAndTheFileIsUntouched)
{
    std::string alive_dir = dir_ + "/repo/tasks/alive-task";
    MakeLegacy(kLegacySchema,
               Row("done", alive_dir, 11, "completed", "'2025-01-15T10:30:45.250000'", "'2025-01-15T11:00:00'", 4,
                   14096, "ses_done") +
                   Row("capped", "/gone/proj/tasks/capped", 12, "stopped", "1736935845", "1736936845", 10, 14097,
                       "ses_capped") +
                   Row("broke", "/gone/proj/tasks/broke", 13, "failed", "'1736935845'", "'2025-01-15T10:30:45Z'", 2,
                       14098, "ses_broke") +
                   Row("paused", "/gone/proj/tasks/paused/", 14, "checkpointed", "'2025-01-15 10:30:45+02:00'",
                       "1736935845.5", 3, 14099, "ses_paused") +
                   Row("orphan", "/gone/proj/tasks/orphan", 4242, "running", "1736935845", "1736935900", 5, 14100,
                       "ses_orphan") +
                   Row("busy", "/gone/proj/tasks/busy", 5151, "running", "1736935845", "1736935900", 1, 14101,
                       "ses_busy") +
                   Row("claude", "/gone/proj/tasks/claude", 15, "completed", "1736935845", "1736935900", 2, 0, "") +
                   Row("weird", "/gone/proj/tasks/weird", 16, "paused", "1736935845", "1736935900", 1, 0, ""));
    std::string bytes_before = ReadFile(legacy_);
    auto listing_before = LegacyDirListing();

    auto report = Import({5151});
    EXPECT_EQ(report.imported, 6);
    EXPECT_EQ(report.already_imported, 0);
    EXPECT_EQ(report.skipped, 2);
    EXPECT_TRUE(report.warnings.empty());

    struct Expect {
        const char* task;
        RunStatus status;
        RunReason reason;
        const char* session;
        int port;
        OutcomeName outcome;
    };
    using S = RunStatus;
    using R = RunReason;
    using O = OutcomeName;
    for (const Expect& x : {Expect{"done", S::kCompleted, R::kNone, "ses_done", 14096, O::kComplete},
                            Expect{"capped", S::kStopped, R::kNone, "ses_capped", 14097, O::kContinue},
                            Expect{"broke", S::kFailed, R::kNone, "ses_broke", 14098, O::kError},
                            Expect{"paused", S::kStopped, R::kUser, "ses_paused", 14099, O::kContinue},
                            Expect{"orphan", S::kStopped, R::kLegacyWorkerGone, "ses_orphan", 14100, O::kInterrupted},
                            Expect{"claude", S::kCompleted, R::kNone, "", 0, O::kNone}}) {
        const LegacyEntry& e = EntryOf(report, x.task);
        EXPECT_EQ(e.action, "imported") << x.task;
        auto run = store_->GetRun(e.run_id);
        ASSERT_TRUE(run) << x.task;
        EXPECT_EQ(run->status, x.status) << x.task;
        EXPECT_EQ(run->reason, x.reason) << x.task;
        EXPECT_EQ(run->session_id, x.session) << x.task;
        EXPECT_EQ(run->last_port, x.port) << x.task;  // history: RunJson never shows it as live
        EXPECT_EQ(run->task_name, x.task);
        EXPECT_GT(run->ended_at, 0) << x.task;
        auto its = store_->Iterations(run->id);
        if (std::string(x.session).empty()) {
            EXPECT_TRUE(its.empty()) << x.task;
        } else {
            ASSERT_EQ(its.size(), 1u) << x.task;
            EXPECT_EQ(its[0].session_id, x.session);
            EXPECT_EQ(its[0].outcome, x.outcome) << x.task;
            EXPECT_EQ(its[0].n, run->iteration) << x.task;
            EXPECT_EQ(its[0].port, x.port);
            // attach finds it by its session, as for any run.
            ASSERT_TRUE(store_->RunForSession(x.session));
            EXPECT_EQ(store_->RunForSession(x.session)->id, run->id);
        }
        // An imported run is final like any other.
        EXPECT_FALSE(store_->FinishRun(run->id, RunStatus::kFailed, RunReason::kTaskInvalid, 1));
    }
    // Project roots as SPEC §1: the git root of an existing task, else the task directory's grandparent.
    auto done = store_->GetRun(EntryOf(report, "done").run_id);
    EXPECT_EQ(done->project_root, fs::canonical(dir_ + "/repo").string());
    EXPECT_EQ(done->task_dir, fs::canonical(alive_dir).string());
    EXPECT_EQ(done->iteration, 4);
    EXPECT_EQ(done->max_iterations, 10);
    auto paused = store_->GetRun(EntryOf(report, "paused").run_id);
    EXPECT_EQ(paused->project_root, "/gone/proj");
    EXPECT_EQ(paused->task_dir, "/gone/proj/tasks/paused");
    // Times: unix seconds (integer, text, real) and ISO text, with or without an offset.
    auto capped = store_->GetRun(EntryOf(report, "capped").run_id);
    EXPECT_EQ(capped->started_at, 1736935845000);
    EXPECT_EQ(capped->ended_at, 1736936845000);
    auto broke = store_->GetRun(EntryOf(report, "broke").run_id);
    EXPECT_EQ(broke->started_at, 1736935845000);
    EXPECT_EQ(broke->ended_at, 1736937045000);  // 2025-01-15T10:30:45Z
    EXPECT_EQ(paused->started_at, 1736937045000 - 2 * 3600 * 1000);
    EXPECT_EQ(paused->ended_at, 1736935845500);
    std::tm local{};
    local.tm_year = 125;
    local.tm_mon = 0;
    local.tm_mday = 15;
    local.tm_hour = 10;
    local.tm_min = 30;
    local.tm_sec = 45;
    local.tm_isdst = -1;
    EXPECT_EQ(done->started_at, static_cast<int64_t>(mktime(&local)) * 1000 + 250);  // naive ISO is local time

    // Skipped: a live worker (import again once it ends) and an unknown status.
    const LegacyEntry& busy = EntryOf(report, "busy");
    EXPECT_EQ(busy.action, "skipped");
    EXPECT_NE(busy.message.find("import again once it has ended"), std::string::npos) << busy.message;
    EXPECT_EQ(busy.run_id, 0);
    const LegacyEntry& weird = EntryOf(report, "weird");
    EXPECT_EQ(weird.action, "skipped");
    EXPECT_NE(weird.message.find("unknown status 'paused'"), std::string::npos) << weird.message;

    // Twice: nothing imported twice.
    size_t runs_after_first = store_->ListRuns("", 0).size();
    EXPECT_EQ(runs_after_first, 6u);
    auto again = Import({5151});
    EXPECT_EQ(again.imported, 0);
    EXPECT_EQ(again.already_imported, 6);
    EXPECT_EQ(again.skipped, 2);
    EXPECT_EQ(EntryOf(again, "done").run_id, EntryOf(report, "done").run_id);
    EXPECT_EQ(store_->ListRuns("", 0).size(), runs_after_first);

    // Once the busy worker is gone, importing again brings in just that one.
    auto later = Import();
    EXPECT_EQ(later.imported, 1);
    EXPECT_EQ(later.already_imported, 6);
    EXPECT_EQ(EntryOf(later, "busy").reason, RunReason::kLegacyWorkerGone);
    EXPECT_EQ(store_->ListRuns("", 0).size(), runs_after_first + 1);

    // The legacy file is exactly as it was, and nothing was created beside it.
    EXPECT_EQ(ReadFile(legacy_), bytes_before);
    EXPECT_EQ(LegacyDirListing(), listing_before);
}

TEST_F(UnitLegacyImport, ARunningEntryWithoutAPidColumnIsSkippedNotGuessed)
{
    MakeLegacy("CREATE TABLE sessions (task_name TEXT, task_dir TEXT, status TEXT, started_at TEXT, updated_at TEXT, "
               "iteration INTEGER, max_iterations INTEGER, server_port INTEGER, opencode_session_id TEXT, extra TEXT);",
               "INSERT INTO sessions VALUES ('t', '/gone/p/tasks/t', 'running', '1736935845', '1736935845', 1, 5, "
               "14096, 'ses_t', 'x');"
               "INSERT INTO sessions VALUES ('u', '/gone/p/tasks/u', 'completed', '1736935845', '1736935845', 1, 5, "
               "NULL, 'ses_u', 'x');");
    auto report = Import();
    EXPECT_EQ(report.imported, 1);
    EXPECT_EQ(report.skipped, 1);
    EXPECT_NE(EntryOf(report, "t").message.find("no worker pid column"), std::string::npos);
    // A table of no known shape: how it ran is not claimed.
    auto u = store_->GetRun(EntryOf(report, "u").run_id);
    ASSERT_TRUE(u);
    EXPECT_EQ(u->legacy.session_type, "");
}

TEST_F(UnitLegacyImport, AMissingTableOrColumnOrFileIsAClearError)
{
    MakeLegacy("CREATE TABLE runs (id INTEGER); CREATE TABLE other (x TEXT);", "");
    std::string bytes = ReadFile(legacy_);
    try {
        Import();
        FAIL() << "imported a database without the sessions table";
    } catch (const LegacyImportError& e) {
        std::string msg = e.what();
        EXPECT_FALSE(e.missing_file);
        EXPECT_NE(msg.find("no table 'sessions'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("other, runs"), std::string::npos) << msg;
        EXPECT_NE(msg.find(legacy_), std::string::npos) << msg;
    }
    EXPECT_EQ(ReadFile(legacy_), bytes);

    fs::remove(legacy_);
    MakeLegacy("CREATE TABLE sessions (task_name TEXT, task_dir TEXT, status TEXT, started_at TEXT, updated_at TEXT, "
               "server_port INTEGER);",
               "INSERT INTO sessions VALUES ('t', '/p/tasks/t', 'completed', '1', '1', 14096);");
    try {
        Import();
        FAIL() << "imported a table without iteration and max_iterations";
    } catch (const LegacyImportError& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("lacks the columns iteration, max_iterations, which every version of the earlier ralph "
                           "wrote"),
                  std::string::npos)
            << msg;
    }
    EXPECT_TRUE(store_->ListRuns("", 0).empty());

    WriteFile(legacy_, "this is not a database, just text that is long enough to fill a header page......\n");
    try {
        Import();
        FAIL() << "imported a text file";
    } catch (const LegacyImportError& e) {
        EXPECT_NE(std::string(e.what()).find("not an SQLite database"), std::string::npos) << e.what();
    }

    fs::remove(legacy_);
    try {
        Import();
        FAIL() << "imported a missing file";
    } catch (const LegacyImportError& e) {
        EXPECT_TRUE(e.missing_file);
        EXPECT_NE(std::string(e.what()).find("no database of the earlier ralph at " + legacy_), std::string::npos)
            << e.what();
    }
    EXPECT_FALSE(fs::exists(legacy_));  // not created by opening it
}


// Every schema the earlier ralph's session.py created imports, keeping what it holds.
class UnitLegacyImportEra : public UnitLegacyImport, public ::testing::WithParamInterface<LegacyEra> {};

TEST_P(UnitLegacyImportEra, ImportsWhatItHoldsKeepsLegacyFieldsAndConsumesNoIdsAgain)
{
    MakeLegacy(GetParam().create, "");
    auto columns = LegacyColumns(legacy_);
    ASSERT_TRUE(columns.count("task_name")) << GetParam().commits;
    const bool has_type = columns.count("session_type"), has_session = columns.count("opencode_session_id"),
               has_remote = columns.count("transport"), has_workspace = columns.count("workspace_dir");
    // A claude loop in tmux that finished, and an opencode loop whose worker is gone.
    std::string rows =
        LegacyInsert(columns, {{"task_name", "'story-loop'"},
                               {"task_dir", "'/gone/proj/tasks/story-loop'"},
                               {"pid", "4242"},
                               {"tmux_session", "'ralph-story-loop'"},
                               {"agent", "'claude'"},
                               {"status", "'completed'"},
                               {"started_at", "'2026-01-23T10:00:00.123456'"},
                               {"updated_at", "'2026-01-23T11:00:00.654321'"},
                               {"iteration", "3"},
                               {"current_story", "'US-003: Add login'"},
                               {"max_iterations", "10"},
                               {"session_type", "'tmux'"},
                               {"server_port", "NULL"},
                               {"workspace_dir", "'/home/u/ws/proj'"},
                               {"workspace_name", "'proj'"}}) +
        LegacyInsert(columns, {{"task_name", "'orphan'"},
                               {"task_dir", "'/gone/proj/tasks/orphan'"},
                               {"pid", "4343"},
                               {"tmux_session", "''"},
                               {"agent", "'opencode'"},
                               {"status", "'running'"},
                               {"started_at", "'2026-01-24T10:00:00'"},
                               {"updated_at", "'2026-01-24T10:05:00'"},
                               {"iteration", "2"},
                               {"current_story", "'US-001'"},
                               {"max_iterations", "50"},
                               {"session_type", "'opencode-server'"},
                               {"server_port", "14100"},
                               {"server_url", "'http://127.0.0.1:14100'"},
                               {"opencode_session_id", "'ses_orphan'"}});
    if (has_remote)
        rows += LegacyInsert(columns, {{"task_name", "'remote'"},
                                       {"task_dir", "'/gone/proj/tasks/remote'"},
                                       {"pid", "4444"},
                                       {"tmux_session", "''"},
                                       {"agent", "'opencode'"},
                                       {"status", "'running'"},
                                       {"started_at", "'2026-01-25T10:00:00'"},
                                       {"updated_at", "'2026-01-25T10:05:00'"},
                                       {"transport", "'ziti'"},
                                       {"remote_host", "'buildbox'"}});
    MakeLegacy("", rows);

    LegacyImportOptions options;
    options.path = legacy_;
    options.worker_alive = [](int) { return false; };
    options.parent_of = [](int) { return 0; };
    auto report = ImportLegacyDatabase(*store_, options);
    EXPECT_EQ(report.imported, 2) << GetParam().commits;
    EXPECT_EQ(report.skipped, has_remote ? 1 : 0) << GetParam().commits;
    if (has_remote) {
        const LegacyEntry& remote = EntryOf(report, "remote");
        EXPECT_EQ(remote.action, "skipped");
        EXPECT_NE(remote.message.find("on buildbox (transport ziti)"), std::string::npos) << remote.message;
    }

    auto story = store_->GetRun(EntryOf(report, "story-loop").run_id);
    ASSERT_TRUE(story) << GetParam().commits;
    EXPECT_EQ(story->status, RunStatus::kCompleted);
    EXPECT_EQ(story->iteration, 3);
    EXPECT_EQ(story->max_iterations, 10);
    EXPECT_EQ(story->legacy.agent, "claude");
    EXPECT_EQ(story->legacy.session_type, "tmux");  // before the column, every loop ran in tmux
    EXPECT_EQ(story->legacy.current_story, "US-003: Add login");
    EXPECT_EQ(story->legacy.workspace_dir, has_workspace ? "/home/u/ws/proj" : "");
    EXPECT_EQ(story->session_id, "");
    EXPECT_TRUE(store_->Iterations(story->id).empty());

    auto orphan = store_->GetRun(EntryOf(report, "orphan").run_id);
    ASSERT_TRUE(orphan) << GetParam().commits;
    EXPECT_EQ(orphan->status, RunStatus::kStopped);
    EXPECT_EQ(orphan->reason, RunReason::kLegacyWorkerGone);
    EXPECT_EQ(orphan->legacy.agent, "opencode");
    EXPECT_EQ(orphan->legacy.session_type, has_type ? "opencode-server" : "tmux");
    EXPECT_EQ(orphan->legacy.current_story, "US-001");
    EXPECT_EQ(orphan->last_port, has_type ? 14100 : 0);
    EXPECT_EQ(orphan->session_id, has_session ? "ses_orphan" : "");

    // Importing again imports nothing and consumes no run ids: the next run follows the last import.
    int64_t last_id = std::max(story->id, orphan->id);
    for (int i = 0; i < 3; ++i) {
        auto again = ImportLegacyDatabase(*store_, options);
        EXPECT_EQ(again.imported, 0);
        EXPECT_EQ(again.already_imported, 2);
    }
    RunRow next;
    next.task_name = "next";
    next.task_dir = dir_ + "/repo/tasks/alive-task";
    next.project_root = dir_ + "/repo";
    next.started_at = NowMillis();
    auto next_id = store_->InsertRun(next);
    ASSERT_TRUE(next_id);
    EXPECT_EQ(*next_id, last_id + 1) << GetParam().commits;
}

INSTANTIATE_TEST_SUITE_P(UnitSessionPyHistory, UnitLegacyImportEra, ::testing::ValuesIn(kLegacyEras),
                         [](const ::testing::TestParamInfo<LegacyEra>& era) {
                             std::string name = era.param.commits;
                             return name.substr(0, name.find(' '));
                         });

// Until server_pid (de9c682) and again until 3f4c2ce, session.py recorded an opencode-server loop
// under the pid of the `opencode serve` it started: the loop is that process's parent. Real
// processes stand in: a shell whose command line names ralph, with a child that is not ralph.
TEST_F(UnitLegacyImport, AServerPidOfALiveLoopIsSkippedNotTakenForAGoneWorker)
{
    std::string child_pid_file = dir_ + "/child.pid";
    pid_t loop = test::SpawnProgram({"/bin/sh", "-c", "sleep 600 & echo $! > \"$1\"; wait", "ralph-uv-loop",
                                     child_pid_file},
                                    {}, dir_ + "/loop.out", dir_ + "/loop.err");
    ASSERT_GT(loop, 0);
    ASSERT_TRUE(test::WaitFor([&] { return ReadFile(child_pid_file).find('\n') != std::string::npos; },
                              std::chrono::seconds(10)))
        << "the stand-in loop did not start its child";
    int server = std::stoi(ReadFile(child_pid_file));
    struct Reap {  // the stand-ins never outlive the test; 0 once they have ended
        pid_t& loop;
        int& server;
        ~Reap()
        {
            if (server > 0) kill(server, SIGKILL);
            if (loop > 0) {
                kill(loop, SIGKILL);
                test::WaitExit(loop, std::chrono::seconds(10));
            }
        }
    } reap{loop, server};
    MakeLegacy(kLegacyEras[4].create, "");
    auto columns = LegacyColumns(legacy_);
    MakeLegacy("", LegacyInsert(columns, {{"task_name", "'served'"},
                                          {"task_dir", "'/gone/proj/tasks/served'"},
                                          {"pid", std::to_string(server)},
                                          {"tmux_session", "''"},
                                          {"agent", "'opencode'"},
                                          {"status", "'running'"},
                                          {"started_at", "'2026-02-04T10:00:00'"},
                                          {"updated_at", "'2026-02-04T10:05:00'"},
                                          {"session_type", "'opencode-server'"},
                                          {"server_port", "14096"},
                                          {"opencode_session_id", "'ses_served'"}}));
    LegacyImportOptions options;  // the real /proc checks
    options.path = legacy_;
    auto report = ImportLegacyDatabase(*store_, options);
    const LegacyEntry& live = EntryOf(report, "served");
    EXPECT_EQ(live.action, "skipped") << live.message;
    EXPECT_NE(live.message.find("worker pid " + std::to_string(loop)), std::string::npos) << live.message;
    EXPECT_TRUE(store_->ListRuns("", 0).empty());

    // The loop ends (its server first): now it is history.
    kill(server, SIGTERM);
    ASSERT_EQ(test::WaitExit(loop, std::chrono::seconds(10)), 0);  // its `wait` reaped the server
    server = 0;
    loop = 0;
    auto later = ImportLegacyDatabase(*store_, options);
    const LegacyEntry& gone = EntryOf(later, "served");
    EXPECT_EQ(gone.action, "imported") << gone.message;
    EXPECT_EQ(gone.reason, RunReason::kLegacyWorkerGone);
}

TEST(UnitLegacyTime, UnixSecondsAndIsoText)
{
    EXPECT_EQ(ParseLegacyTime("1736935845"), 1736935845000);
    EXPECT_EQ(ParseLegacyTime("1736935845.25"), 1736935845250);
    EXPECT_EQ(ParseLegacyTime("1736935845123"), 1736935845123);  // already milliseconds
    EXPECT_EQ(ParseLegacyTime("2025-01-15T10:30:45Z"), 1736937045000);
    EXPECT_EQ(ParseLegacyTime("2025-01-15T10:30:45.5+00:00"), 1736937045500);
    EXPECT_EQ(ParseLegacyTime("2025-01-15T12:30:45+0200"), 1736937045000);
    EXPECT_EQ(ParseLegacyTime("2025-01-15 05:30:45-05:00"), 1736937045000);
    EXPECT_GT(ParseLegacyTime("2025-01-15T10:30"), 0);
    EXPECT_GT(ParseLegacyTime("2025-01-15"), 0);
    EXPECT_EQ(ParseLegacyTime(""), 0);
    EXPECT_EQ(ParseLegacyTime("yesterday"), 0);
    EXPECT_EQ(ParseLegacyTime("2025-13-01T00:00:00"), 0);
    EXPECT_EQ(ParseLegacyTime("2025-01-15T10:30:45 junk"), 0);
    EXPECT_EQ(SqliteUriPath("/a b/c?d#e%f"), "/a%20b/c%3Fd%23e%25f");
}

}  // namespace
}  // namespace ralph
