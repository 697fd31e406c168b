// The earlier Python ralph's registry (sessions.db) is imported as finished runs: each legacy status
// maps as specified, importing twice imports nothing twice, the legacy file is never modified (not a
// byte, and no -wal, -shm or -journal beside it), and a file of the wrong shape gives an error
// naming what is missing.
#include "daemon/legacy_import.h"
#include "daemon/store.h"
#include "tests/harness.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <ctime>
#include <filesystem>
#include <set>

namespace ralph {
namespace {

namespace fs = std::filesystem;
using test::ReadFile;
using test::WriteFile;

// The table as the earlier ralph created it (src/ralph/session.py), `pid` being the loop worker.
const char* kLegacySchema = R"sql(
CREATE TABLE sessions (
    task_name TEXT PRIMARY KEY,
    task_dir TEXT NOT NULL,
    pid INTEGER NOT NULL,
    tmux_session TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    iteration INTEGER NOT NULL DEFAULT 0,
    current_story TEXT NOT NULL DEFAULT '',
    max_iterations INTEGER NOT NULL DEFAULT 50,
    session_type TEXT NOT NULL DEFAULT 'tmux',
    server_port INTEGER,
    server_url TEXT NOT NULL DEFAULT '',
    opencode_session_id TEXT NOT NULL DEFAULT ''
);
)sql";

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
        const char* status;
        const char* reason;
        const char* session;
        int port;
        const char* outcome;
    };
    for (const Expect& x : {Expect{"done", "completed", "", "ses_done", 14096, "complete"},
                            Expect{"capped", "stopped", "", "ses_capped", 14097, "continue"},
                            Expect{"broke", "failed", "", "ses_broke", 14098, "error"},
                            Expect{"paused", "stopped", "user", "ses_paused", 14099, "continue"},
                            Expect{"orphan", "stopped", "legacy_worker_gone", "ses_orphan", 14100, "interrupted"},
                            Expect{"claude", "completed", "", "", 0, ""}}) {
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
        EXPECT_FALSE(store_->FinishRun(run->id, "failed", "x", 1));
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
    EXPECT_EQ(EntryOf(later, "busy").reason, "legacy_worker_gone");
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
               "iteration INTEGER, max_iterations INTEGER);",
               "INSERT INTO sessions VALUES ('t', '/p/tasks/t', 'completed', '1', '1', 1, 1);");
    try {
        Import();
        FAIL() << "imported a table without server_port and opencode_session_id";
    } catch (const LegacyImportError& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("lacks the columns server_port, opencode_session_id"), std::string::npos) << msg;
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

// Through the real daemon and client: `ralph import-legacy PATH` reports what it did, `--json`
// gives the counts, and the imported runs are listed like any other, with no live server shown.
TEST(FunctionalImportLegacy, ImportsThroughTheCommandLineOnce)
{
    test::TestEnv env;
    std::string legacy = env.dir + "/old/sessions.db";
    fs::create_directories(env.dir + "/old");
    {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open(legacy.c_str(), &db), SQLITE_OK);
        std::string sql = std::string(kLegacySchema) +
                          "INSERT INTO sessions (task_name, task_dir, pid, tmux_session, agent, status, started_at, "
                          "updated_at, iteration, max_iterations, session_type, server_port, opencode_session_id) "
                          "VALUES ('fix-tests', '/gone/proj/tasks/fix-tests', 1, 'ralph-fix-tests', 'opencode', "
                          "'checkpointed', '2025-01-15T10:30:45', '2025-01-15T11:30:45', 3, 10, 'opencode-server', "
                          "14096, 'ses_legacy');";
        ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(db);
    }
    std::string bytes = ReadFile(legacy);
    env.StartDaemon();
    auto r = env.Ralph({"import-legacy", legacy});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("fix-tests, stopped (user)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("imported 1 run(s) from " + legacy + "; 0 imported before, 0 skipped"), std::string::npos)
        << r.out;
    // A relative path is the client's: resolved against its working directory.
    r = env.Ralph({"--json", "import-legacy", "sessions.db"}, env.dir + "/old");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto again = boost::json::parse(r.out);
    EXPECT_EQ(again.at("imported"), 0);
    EXPECT_EQ(again.at("already_imported"), 1);
    EXPECT_EQ(ReadFile(legacy), bytes);

    auto status = boost::json::parse(env.Ralph({"--json", "status", "--all"}).out);
    ASSERT_EQ(status.at("runs").as_array().size(), 1u);
    const auto& run = status.at("runs").as_array()[0];
    EXPECT_EQ(run.at("status"), "stopped");
    EXPECT_EQ(run.at("session_id"), "ses_legacy");
    EXPECT_EQ(run.at("last_port"), 14096);
    EXPECT_TRUE(run.at("server_url").is_null());

    // The default path is the earlier ralph's, under HOME; missing, it says so and how to give one.
    r = env.Ralph({"import-legacy"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("no database of the earlier ralph at " + env.home + "/.local/share/ralph/sessions.db"),
              std::string::npos)
        << r.err;
    r = env.Ralph({"--json", "import-legacy", env.dir + "/old"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(boost::json::parse(r.out).at("error").at("name"), "INVALID_PARAMS") << r.out;
}

}  // namespace
}  // namespace ralph
