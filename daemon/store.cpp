#include "daemon/store.h"

#include <boost/json.hpp>
#include <sqlite3.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ralph {

int64_t NowMillis()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

namespace {

// Step N migrates a database of user_version N to N + 1. Never edit a step once released; append.
const char* const kMigrations[] = {
    // 0 -> 1: the first schema.
    R"sql(
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_name TEXT NOT NULL,
    task_dir TEXT NOT NULL,
    project_root TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'stopped', 'failed')),
    reason TEXT NOT NULL DEFAULT '',
    iteration INTEGER NOT NULL DEFAULT 0,
    max_iterations INTEGER NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    agent TEXT NOT NULL DEFAULT '',
    promise TEXT NOT NULL,
    iteration_timeout_ms INTEGER NOT NULL,
    max_consecutive_failures INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    stop_requested TEXT NOT NULL DEFAULT '',
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    session_id TEXT NOT NULL DEFAULT '',
    last_port INTEGER,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX runs_one_running_per_task ON runs (task_dir) WHERE status = 'running';
CREATE INDEX runs_by_task ON runs (task_dir, id);
CREATE TRIGGER runs_terminal_final BEFORE UPDATE ON runs WHEN OLD.status <> 'running'
BEGIN SELECT RAISE(ABORT, 'run has ended: a terminal run never changes'); END;
CREATE TRIGGER runs_terminal_not_deleted BEFORE DELETE ON runs
BEGIN SELECT RAISE(ABORT, 'runs are history: never deleted'); END;
CREATE TABLE iterations (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    n INTEGER NOT NULL,
    session_id TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL DEFAULT ''
        CHECK (outcome IN ('', 'continue', 'complete', 'error', 'timeout', 'aborted', 'interrupted')),
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    error TEXT NOT NULL DEFAULT '',
    promise_seen INTEGER NOT NULL DEFAULT 0,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    port INTEGER,
    PRIMARY KEY (run_id, n)
);
CREATE TABLE run_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs (id),
    at INTEGER NOT NULL,
    iteration INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX run_events_by_run ON run_events (run_id, id);
CREATE TABLE server_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    pid INTEGER,
    port INTEGER,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE managed_server (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    port INTEGER NOT NULL,
    started_at INTEGER NOT NULL
);
)sql",
    // 1 -> 2: runs imported from the earlier Python ralph remember their entry there, so that
    // importing twice imports nothing twice. NULL for ralph's own runs (NULLs never collide).
    R"sql(
ALTER TABLE runs ADD COLUMN legacy_id TEXT;
CREATE UNIQUE INDEX runs_by_legacy_id ON runs (legacy_id);
)sql",
    // 2 -> 3: what the earlier ralph recorded of an imported loop and ralph has no column for: its
    // agent CLI (claude, opencode), how it ran (tmux, opencode-server), its story and workspace.
    R"sql(
ALTER TABLE runs ADD COLUMN legacy_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN legacy_session_type TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN legacy_current_story TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN legacy_workspace_dir TEXT NOT NULL DEFAULT '';
)sql",
};

static_assert(sizeof kMigrations / sizeof kMigrations[0] == RunStore::kSchemaVersion);

}  // namespace

/// A prepared statement with positional binding; reset on destruction.
class RunStore::Stmt {
public:
    Stmt(RunStore& store, const char* sql) : store_(store)
    {
        if (sqlite3_prepare_v2(store.db_, sql, -1, &stmt_, nullptr) != SQLITE_OK) store.Fail("prepare");
    }
    ~Stmt() { sqlite3_finalize(stmt_); }
    Stmt& Bind(int64_t v)
    {
        sqlite3_bind_int64(stmt_, ++index_, v);
        return *this;
    }
    Stmt& Bind(int v) { return Bind(static_cast<int64_t>(v)); }
    Stmt& Bind(double v)
    {
        sqlite3_bind_double(stmt_, ++index_, v);
        return *this;
    }
    Stmt& Bind(const std::string& v)
    {
        sqlite3_bind_text(stmt_, ++index_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Stmt& BindNullableInt(int64_t v)
    {
        if (v == 0) sqlite3_bind_null(stmt_, ++index_);
        else Bind(v);
        return *this;
    }
    /// Steps once; true when a row is available.
    bool Step()
    {
        int rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        store_.Fail("step");
    }
    int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
    double Real(int col) { return sqlite3_column_double(stmt_, col); }
    std::string Text(int col)
    {
        auto* p = sqlite3_column_text(stmt_, col);
        return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col)) : std::string();
    }

private:
    RunStore& store_;
    sqlite3_stmt* stmt_{nullptr};
    int index_{0};
};

namespace {

/// What a person can do about the last error on `db`, for the few errors the environment causes.
std::string Hint(sqlite3* db)
{
    switch (sqlite3_errcode(db)) {
    case SQLITE_FULL:
        return " (the disk holding the state directory is full: free some space; ralphd tries again)";
    case SQLITE_READONLY:
        return " (the state directory is read-only: make it writable, or point RALPH_STATE_DIR elsewhere)";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return " (another process holds a lock on the database, e.g. an open sqlite3 shell: close it; ralphd tries "
               "again)";
    case SQLITE_IOERR:
        return " (an I/O error: check the disk holding the state directory)";
    default:
        return "";
    }
}

/// BEGIN IMMEDIATE ... COMMIT, rolled back when left without Commit().
class Transaction {
public:
    explicit Transaction(sqlite3* db) : db_(db) { Run("BEGIN IMMEDIATE"); }
    ~Transaction()
    {
        if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    void Commit()
    {
        Run("COMMIT");
        done_ = true;
    }

private:
    void Run(const char* sql)
    {
        char* err = nullptr;
        if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
            std::string msg = err ? err : "unknown error";
            sqlite3_free(err);
            throw StoreError(std::string("state database: ") + sql + " failed: " + msg + Hint(db_));
        }
    }
    sqlite3* db_;
    bool done_{false};
};

const char* kRunColumns =
    "id, task_name, task_dir, project_root, status, reason, iteration, max_iterations, model, agent, promise, "
    "iteration_timeout_ms, max_consecutive_failures, consecutive_failures, stop_requested, started_at, "
    "COALESCE(ended_at, 0), session_id, COALESCE(last_port, 0), tokens_in, tokens_out, cost, legacy_agent, "
    "legacy_session_type, legacy_current_story, legacy_workspace_dir";

template <typename S>
RunRow ReadRun(S& s)
{
    RunRow r;
    r.id = s.Int(0);
    r.task_name = s.Text(1);
    r.task_dir = s.Text(2);
    r.project_root = s.Text(3);
    r.status = s.Text(4);
    r.reason = s.Text(5);
    r.iteration = static_cast<int>(s.Int(6));
    r.max_iterations = static_cast<int>(s.Int(7));
    r.model = s.Text(8);
    r.agent = s.Text(9);
    r.promise = s.Text(10);
    r.iteration_timeout_ms = s.Int(11);
    r.max_consecutive_failures = static_cast<int>(s.Int(12));
    r.consecutive_failures = static_cast<int>(s.Int(13));
    r.stop_requested = s.Text(14);
    r.started_at = s.Int(15);
    r.ended_at = s.Int(16);
    r.session_id = s.Text(17);
    r.last_port = static_cast<int>(s.Int(18));
    r.tokens_in = s.Int(19);
    r.tokens_out = s.Int(20);
    r.cost = s.Real(21);
    r.legacy.agent = s.Text(22);
    r.legacy.session_type = s.Text(23);
    r.legacy.current_story = s.Text(24);
    r.legacy.workspace_dir = s.Text(25);
    return r;
}

const char* kIterationColumns =
    "run_id, n, session_id, outcome, started_at, COALESCE(ended_at, 0), error, promise_seen, tokens_in, "
    "tokens_out, cost, COALESCE(port, 0)";

template <typename S>
IterationRow ReadIteration(S& s)
{
    IterationRow it;
    it.run_id = s.Int(0);
    it.n = static_cast<int>(s.Int(1));
    it.session_id = s.Text(2);
    it.outcome = s.Text(3);
    it.started_at = s.Int(4);
    it.ended_at = s.Int(5);
    it.error = s.Text(6);
    it.promise_seen = s.Int(7) != 0;
    it.tokens_in = s.Int(8);
    it.tokens_out = s.Int(9);
    it.cost = s.Real(10);
    it.port = static_cast<int>(s.Int(11));
    return it;
}

}  // namespace

RunStore::RunStore(const std::string& path) : path_(path)
{
    // Create the file 0600 ourselves; SQLite gives -wal and -shm the same mode.
    // Never through a symbolic link (someone else's file could become our database).
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        throw StoreError("cannot open state database " + path + ": " +
                         (errno == ELOOP ? "it is a symbolic link (not followed)" : std::strerror(errno)));
    close(fd);
    OpenConnection();
    try {
        Migrate();
    } catch (...) {
        sqlite3_close(db_);
        db_ = nullptr;
        throw;
    }
    RememberFiles();
}

void RunStore::OpenConnection()
{
    // Not SQLITE_OPEN_NOFOLLOW: it refuses a link anywhere in the path (a linked HOME); the open
    // in the constructor has already refused a link in the file's own place.
    if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw StoreError("cannot open state database " + path_ + ": " + msg);
    }
    try {
        sqlite3_busy_timeout(db_, kBusyTimeoutMs);
        Exec("PRAGMA journal_mode = WAL");
        Exec("PRAGMA synchronous = NORMAL");
        Exec("PRAGMA foreign_keys = ON");
    } catch (...) {
        sqlite3_close(db_);
        db_ = nullptr;
        throw;
    }
}

RunStore::~RunStore()
{
    if (db_) sqlite3_close(db_);
}

void RunStore::Fail(const std::string& what)
{
    throw StoreError("state database " + path_ + ": " + what + ": " + sqlite3_errmsg(db_) + Hint(db_));
}

void RunStore::Exec(const std::string& sql)
{
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db_);
        sqlite3_free(err);
        throw StoreError("state database " + path_ + ": " + msg + Hint(db_));
    }
}

void RunStore::ExecForTest(const std::string& sql) { Exec(sql); }

void RunStore::CreateAtVersionForTest(const std::string& path, int version)
{
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw StoreError("cannot open " + path);
    for (int v = 0; v < version; ++v) {
        std::string sql = std::string(kMigrations[v]) + "PRAGMA user_version = " + std::to_string(v + 1) + ";";
        if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
            sqlite3_close(db);
            throw StoreError("migration step " + std::to_string(v) + " failed");
        }
    }
    sqlite3_close(db);
}

int RunStore::SchemaVersion()
{
    Stmt s(*this, "PRAGMA user_version");
    s.Step();
    return static_cast<int>(s.Int(0));
}

void RunStore::Migrate()
{
    for (;;) {
        Transaction tx(db_);
        int version = SchemaVersion();
        if (version > kSchemaVersion)
            throw StoreError("state database " + path_ + " has schema version " + std::to_string(version) +
                             ", newer than this ralphd understands (" + std::to_string(kSchemaVersion) +
                             "): upgrade ralph, or point RALPH_STATE_DIR elsewhere");
        if (version == kSchemaVersion) return;
        Exec(kMigrations[version]);
        Exec("PRAGMA user_version = " + std::to_string(version + 1));
        tx.Commit();
    }
}

std::optional<int64_t> RunStore::InsertRun(const RunRow& r)
{
    Transaction tx(db_);
    {
        Stmt check(*this, "SELECT 1 FROM runs WHERE task_dir = ? AND status = 'running'");
        check.Bind(r.task_dir);
        if (check.Step()) return std::nullopt;
    }
    Stmt s(*this,
           "INSERT INTO runs (task_name, task_dir, project_root, status, max_iterations, model, agent, promise, "
           "iteration_timeout_ms, max_consecutive_failures, started_at) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)");
    s.Bind(r.task_name).Bind(r.task_dir).Bind(r.project_root).Bind(r.max_iterations).Bind(r.model).Bind(r.agent)
        .Bind(r.promise).Bind(r.iteration_timeout_ms).Bind(r.max_consecutive_failures).Bind(r.started_at);
    s.Step();
    int64_t id = sqlite3_last_insert_rowid(db_);
    tx.Commit();
    return id;
}

std::optional<RunRow> RunStore::GetRun(int64_t id)
{
    Stmt s(*this, (std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?").c_str());
    s.Bind(id);
    if (!s.Step()) return std::nullopt;
    return ReadRun(s);
}

std::optional<RunRow> RunStore::LatestRunForTask(const std::string& task_dir)
{
    Stmt s(*this, (std::string("SELECT ") + kRunColumns + " FROM runs WHERE task_dir = ? ORDER BY id DESC LIMIT 1").c_str());
    s.Bind(task_dir);
    if (!s.Step()) return std::nullopt;
    return ReadRun(s);
}

std::optional<RunRow> RunStore::RunningRunForTask(const std::string& task_dir)
{
    Stmt s(*this, (std::string("SELECT ") + kRunColumns + " FROM runs WHERE task_dir = ? AND status = 'running'").c_str());
    s.Bind(task_dir);
    if (!s.Step()) return std::nullopt;
    return ReadRun(s);
}

std::vector<RunRow> RunStore::ListRuns(const std::string& task_dir, int limit)
{
    std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs";
    if (!task_dir.empty()) sql += " WHERE task_dir = ?";
    sql += " ORDER BY id DESC";
    if (limit > 0) sql += " LIMIT " + std::to_string(limit);
    std::vector<RunRow> out;
    {
        Stmt s(*this, sql.c_str());
        if (!task_dir.empty()) s.Bind(task_dir);
        while (s.Step()) out.push_back(ReadRun(s));
    }
    // Running runs are always listed, even when older than the limit.
    if (limit > 0) {
        for (RunRow& r : RunningRuns()) {
            if (!task_dir.empty() && r.task_dir != task_dir) continue;
            bool seen = false;
            for (const RunRow& o : out) seen = seen || o.id == r.id;
            if (!seen) out.push_back(std::move(r));
        }
    }
    return out;
}

int64_t RunStore::CountRuns(const std::string& task_dir)
{
    Stmt s(*this, task_dir.empty() ? "SELECT COUNT(*) FROM runs" : "SELECT COUNT(*) FROM runs WHERE task_dir = ?");
    if (!task_dir.empty()) s.Bind(task_dir);
    return s.Step() ? s.Int(0) : 0;
}

std::vector<RunRow> RunStore::RunningRuns()
{
    // Without INDEXED BY, SQLite scans the whole table (every run ever) to find the few running
    // ones; the partial index holds exactly the running runs. Every run.list calls this.
    Stmt s(*this, (std::string("SELECT ") + kRunColumns +
                   " FROM runs INDEXED BY runs_one_running_per_task WHERE status = 'running' ORDER BY id")
                      .c_str());
    std::vector<RunRow> out;
    while (s.Step()) out.push_back(ReadRun(s));
    return out;
}

void RunStore::BeginIteration(int64_t run_id, int n, const std::string& session_id, int port, int64_t at)
{
    Transaction tx(db_);
    {
        Stmt s(*this, "INSERT INTO iterations (run_id, n, session_id, started_at, port) VALUES (?, ?, ?, ?, ?)");
        s.Bind(run_id).Bind(n).Bind(session_id).Bind(at).BindNullableInt(port);
        s.Step();
    }
    {
        Stmt s(*this, "UPDATE runs SET iteration = ?, session_id = ?, last_port = COALESCE(?, last_port) "
                      "WHERE id = ? AND status = 'running'");
        s.Bind(n).Bind(session_id).BindNullableInt(port).Bind(run_id);
        s.Step();
        if (sqlite3_changes(db_) != 1) throw StoreError("run " + std::to_string(run_id) + " is not running");
    }
    tx.Commit();
}

void RunStore::FinishIteration(const IterationRow& it)
{
    Transaction tx(db_);
    {
        Stmt s(*this, "UPDATE iterations SET outcome = ?, ended_at = ?, error = ?, promise_seen = ?, tokens_in = ?, "
                      "tokens_out = ?, cost = ? WHERE run_id = ? AND n = ? AND outcome = ''");
        s.Bind(it.outcome).Bind(it.ended_at).Bind(it.error).Bind(it.promise_seen ? 1 : 0).Bind(it.tokens_in)
            .Bind(it.tokens_out).Bind(it.cost).Bind(it.run_id).Bind(it.n);
        s.Step();
        if (sqlite3_changes(db_) != 1) {
            // Already finished (e.g. recorded as interrupted): nothing more to add.
            return;
        }
    }
    {
        // error and timeout count towards the failure limit; aborted/interrupted ones neither count nor reset.
        const char* streak = (it.outcome == "error" || it.outcome == "timeout") ? "consecutive_failures + 1"
                             : (it.outcome == "continue" || it.outcome == "complete") ? "0"
                                                                                       : "consecutive_failures";
        Stmt s(*this, (std::string("UPDATE runs SET tokens_in = tokens_in + ?, tokens_out = tokens_out + ?, "
                                   "cost = cost + ?, consecutive_failures = ") +
                       streak + " WHERE id = ? AND status = 'running'")
                          .c_str());
        s.Bind(it.tokens_in).Bind(it.tokens_out).Bind(it.cost).Bind(it.run_id);
        s.Step();
    }
    tx.Commit();
}

std::vector<IterationRow> RunStore::Iterations(int64_t run_id)
{
    Stmt s(*this, (std::string("SELECT ") + kIterationColumns + " FROM iterations WHERE run_id = ? ORDER BY n").c_str());
    s.Bind(run_id);
    std::vector<IterationRow> out;
    while (s.Step()) out.push_back(ReadIteration(s));
    return out;
}

std::optional<IterationRow> RunStore::UnfinishedIteration(int64_t run_id)
{
    Stmt s(*this, (std::string("SELECT ") + kIterationColumns +
                   " FROM iterations WHERE run_id = ? AND outcome = '' ORDER BY n DESC LIMIT 1")
                      .c_str());
    s.Bind(run_id);
    if (!s.Step()) return std::nullopt;
    return ReadIteration(s);
}

std::vector<ImportOutcome> RunStore::ImportFinishedRuns(const std::vector<ImportedRun>& runs)
{
    for (const ImportedRun& in : runs) {
        const std::string& st = in.run.status;
        if (st != "completed" && st != "stopped" && st != "failed")
            throw StoreError("ImportFinishedRuns: '" + st + "' is not a terminal status");
        if (in.legacy_id.empty()) throw StoreError("ImportFinishedRuns: a run without legacy_id");
    }
    std::vector<ImportOutcome> out;
    Transaction tx(db_);
    for (const ImportedRun& in : runs) {
        const RunRow& r = in.run;
        {
            // Looked up first: an INSERT that conflicts would still consume an AUTOINCREMENT id.
            Stmt s(*this, "SELECT id FROM runs WHERE legacy_id = ?");
            s.Bind(in.legacy_id);
            if (s.Step()) {
                out.push_back({s.Int(0), false});
                continue;
            }
        }
        {
            Stmt s(*this,
                   "INSERT INTO runs (task_name, task_dir, project_root, status, reason, iteration, max_iterations, "
                   "model, agent, promise, iteration_timeout_ms, max_consecutive_failures, started_at, ended_at, "
                   "session_id, last_port, tokens_in, tokens_out, cost, legacy_id, legacy_agent, legacy_session_type, "
                   "legacy_current_story, legacy_workspace_dir) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            s.Bind(r.task_name).Bind(r.task_dir).Bind(r.project_root).Bind(r.status).Bind(r.reason).Bind(r.iteration)
                .Bind(r.max_iterations).Bind(r.model).Bind(r.agent).Bind(r.promise).Bind(r.iteration_timeout_ms)
                .Bind(r.max_consecutive_failures).Bind(r.started_at).BindNullableInt(r.ended_at).Bind(r.session_id)
                .BindNullableInt(r.last_port).Bind(r.tokens_in).Bind(r.tokens_out).Bind(r.cost).Bind(in.legacy_id)
                .Bind(r.legacy.agent).Bind(r.legacy.session_type).Bind(r.legacy.current_story)
                .Bind(r.legacy.workspace_dir);
            s.Step();
        }
        int64_t id = sqlite3_last_insert_rowid(db_);
        for (const IterationRow& it : in.iterations) {
            Stmt s(*this, "INSERT INTO iterations (run_id, n, session_id, outcome, started_at, ended_at, error, "
                          "promise_seen, tokens_in, tokens_out, cost, port) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            s.Bind(id).Bind(it.n).Bind(it.session_id).Bind(it.outcome).Bind(it.started_at).BindNullableInt(it.ended_at)
                .Bind(it.error).Bind(it.promise_seen ? 1 : 0).Bind(it.tokens_in).Bind(it.tokens_out).Bind(it.cost)
                .BindNullableInt(it.port);
            s.Step();
        }
        if (!in.note.empty()) {
            Stmt s(*this, "INSERT INTO run_events (run_id, at, iteration, kind, data) VALUES (?, ?, ?, 'note', ?)");
            std::string data = boost::json::serialize(boost::json::object{{"message", in.note}});
            s.Bind(id).Bind(r.ended_at ? r.ended_at : r.started_at).Bind(r.iteration).Bind(data);
            s.Step();
        }
        out.push_back({id, true});
    }
    tx.Commit();
    return out;
}

std::optional<RunRow> RunStore::MostRecentlyActiveRun()
{
    Stmt s(*this, (std::string("SELECT ") + kRunColumns +
                   " FROM runs WHERE session_id <> '' ORDER BY status = 'running' DESC, "
                   "MAX(started_at, COALESCE(ended_at, 0), COALESCE((SELECT MAX(COALESCE(i.ended_at, i.started_at)) "
                   "FROM iterations i WHERE i.run_id = runs.id), 0)) DESC, id DESC LIMIT 1")
                      .c_str());
    if (!s.Step()) return std::nullopt;
    return ReadRun(s);
}

std::optional<RunRow> RunStore::RunForSession(const std::string& session_id)
{
    if (session_id.empty()) return std::nullopt;
    Stmt s(*this, (std::string("SELECT ") + kRunColumns +
                   " FROM runs WHERE session_id = ?1 OR id IN (SELECT run_id FROM iterations WHERE session_id = ?1) "
                   "ORDER BY id DESC LIMIT 1")
                      .c_str());
    s.Bind(session_id);
    if (!s.Step()) return std::nullopt;
    return ReadRun(s);
}

bool RunStore::FinishRun(int64_t id, const std::string& status, const std::string& reason, int64_t at)
{
    if (status != "completed" && status != "stopped" && status != "failed")
        throw StoreError("FinishRun: '" + status + "' is not a terminal status");
    Transaction tx(db_);
    Stmt s(*this, "UPDATE runs SET status = ?, reason = ?, ended_at = ? WHERE id = ? AND status = 'running'");
    s.Bind(status).Bind(reason).Bind(at).Bind(id);
    s.Step();
    bool changed = sqlite3_changes(db_) == 1;
    tx.Commit();
    return changed;
}

bool RunStore::RequestStop(int64_t id, bool now)
{
    Transaction tx(db_);
    Stmt s(*this, "UPDATE runs SET stop_requested = ? WHERE id = ? AND status = 'running' AND stop_requested <> 'now'");
    s.Bind(std::string(now ? "now" : "after_iteration")).Bind(id);
    s.Step();
    bool changed = sqlite3_changes(db_) == 1;
    tx.Commit();
    if (changed) return true;
    auto run = GetRun(id);
    return run && run->status == "running";
}

std::vector<RunEvent> RunStore::Events(int64_t run_id, int64_t after, int limit)
{
    Stmt s(*this, "SELECT id, run_id, at, iteration, kind, data FROM run_events WHERE run_id = ? AND id > ? "
                  "ORDER BY id LIMIT ?");
    s.Bind(run_id).Bind(after).Bind(limit);
    std::vector<RunEvent> out;
    while (s.Step()) {
        RunEvent e;
        e.id = s.Int(0);
        e.run_id = s.Int(1);
        e.at = s.Int(2);
        e.iteration = static_cast<int>(s.Int(3));
        e.kind = s.Text(4);
        e.data = s.Text(5);
        out.push_back(std::move(e));
    }
    return out;
}

std::vector<RunEvent> RunStore::EventsOfAllRuns(int64_t after, int limit)
{
    Stmt s(*this, "SELECT id, run_id, at, iteration, kind, data FROM run_events WHERE id > ? ORDER BY id LIMIT ?");
    s.Bind(after).Bind(limit);
    std::vector<RunEvent> out;
    while (s.Step()) {
        RunEvent e;
        e.id = s.Int(0);
        e.run_id = s.Int(1);
        e.at = s.Int(2);
        e.iteration = static_cast<int>(s.Int(3));
        e.kind = s.Text(4);
        e.data = s.Text(5);
        out.push_back(std::move(e));
    }
    return out;
}

int64_t RunStore::LastEventId()
{
    Stmt s(*this, "SELECT COALESCE(MAX(id), 0) FROM run_events");
    return s.Step() ? s.Int(0) : 0;
}

void RunStore::RecordServerEvent(const std::string& event, int pid, int port, const std::string& detail, int64_t at)
{
    Transaction tx(db_);
    Stmt s(*this, "INSERT INTO server_history (at, event, pid, port, detail) VALUES (?, ?, ?, ?, ?)");
    s.Bind(at).Bind(event).BindNullableInt(pid).BindNullableInt(port).Bind(detail);
    s.Step();
    tx.Commit();
}

std::optional<ManagedServerRecord> RunStore::GetManagedServer()
{
    Stmt s(*this, "SELECT pid, start_time, port, started_at FROM managed_server WHERE id = 1");
    if (!s.Step()) return std::nullopt;
    return ManagedServerRecord{static_cast<int>(s.Int(0)), static_cast<uint64_t>(s.Int(1)),
                               static_cast<int>(s.Int(2)), s.Int(3)};
}

void RunStore::SetManagedServer(const std::optional<ManagedServerRecord>& record)
{
    Transaction tx(db_);
    if (record) {
        Stmt s(*this, "INSERT OR REPLACE INTO managed_server (id, pid, start_time, port, started_at) VALUES (1, ?, ?, ?, ?)");
        s.Bind(record->pid).Bind(static_cast<int64_t>(record->start_time)).Bind(record->port).Bind(record->started_at);
        s.Step();
    } else {
        Stmt s(*this, "DELETE FROM managed_server");
        s.Step();
    }
    tx.Commit();
}

}  // namespace ralph
