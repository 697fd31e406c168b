#include "daemon/store.h"

#include "daemon/run_states.h"
#include "daemon/store_rows.h"
#include "daemon/store_schema.h"

#include <boost/json.hpp>
#include <sqlite3.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ralph {


namespace {

using namespace store_rows;

/// A row of "SELECT id, run_id, at, iteration, kind, data FROM run_events".
RunEvent ReadEvent(const sqlite::Statement& s)
{
    return RunEvent{s.Int(0), s.Int(1), s.Int(2), static_cast<int>(s.Int(3)), s.Text(4), s.Text(5)};
}

}  // namespace

RunStore::RunStore(const std::string& path) : path_(path), db_("state database " + path)
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
        db_.Close();
        throw;
    }
    RememberFiles();
}

void RunStore::OpenConnection()
{
    // Not SQLITE_OPEN_NOFOLLOW: it refuses a link anywhere in the path (a linked HOME); the open
    // in the constructor has already refused a link in the file's own place. One thread uses
    // the connection, so SQLite's own mutexes are not needed.
    db_.Open(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
    try {
        sqlite3_busy_timeout(db_.handle(), kBusyTimeoutMs);
        db_.Exec("PRAGMA journal_mode = WAL");
        db_.Exec("PRAGMA synchronous = NORMAL");
        db_.Exec("PRAGMA foreign_keys = ON");
    } catch (...) {
        db_.Close();
        throw;
    }
}

RunStore::~RunStore() = default;

void RunStore::ExecForTest(const std::string& sql) { db_.Exec(sql); }

void RunStore::CreateAtVersionForTest(const std::string& path, int version)
{
    sqlite::Database db("test database " + path);
    db.Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    for (int v = 0; v < version; ++v)
        db.Exec(SchemaStep(v) + "PRAGMA user_version = " + std::to_string(v + 1) + ";");
}

int RunStore::SchemaVersion()
{
    auto s = db_.Cached("PRAGMA user_version");
    s.Step();
    return static_cast<int>(s.Int(0));
}

void RunStore::Migrate()
{
    // A step that makes a table again drops the old one, which the other tables' foreign keys
    // name: SQLite's own procedure turns foreign keys off meanwhile (only possible outside a
    // transaction) and checks them before committing.
    db_.Exec("PRAGMA foreign_keys = OFF");
    struct ForeignKeysBackOn {
        sqlite::Database& db;
        ~ForeignKeysBackOn()
        {
            try {
                db.Exec("PRAGMA foreign_keys = ON");
            } catch (...) {
            }
        }
    } back_on{db_};
    for (;;) {
        sqlite::Transaction tx(db_);
        int version = SchemaVersion();
        if (version > kSchemaVersion)
            throw StoreError("state database " + path_ + " has schema version " + std::to_string(version) +
                             ", newer than this ralphd understands (" + std::to_string(kSchemaVersion) +
                             "): upgrade ralph, or point RALPH_STATE_DIR elsewhere");
        if (version == kSchemaVersion) return;
        db_.Exec(SchemaStep(version));
        {
            auto check = db_.Cached("PRAGMA foreign_key_check");
            if (check.Step()) throw StoreError("migrating " + path_ + " to schema " + std::to_string(version + 1) +
                                               " broke a reference of table " + check.Text(0));
        }
        db_.Exec("PRAGMA user_version = " + std::to_string(version + 1));
        tx.Commit();
    }
}

std::optional<int64_t> RunStore::InsertRun(const RunRow& r, bool queued)
{
    sqlite::Transaction tx(db_);
    {
        auto check = db_.Cached(std::string("SELECT 1 FROM runs WHERE task_dir = ? AND ") + kActive);
        check.Bind(r.task_dir);
        if (check.Step()) return std::nullopt;
    }
    auto s = db_.Cached("INSERT INTO runs (task_name, task_dir, project_root, status, max_iterations, model, agent, promise, "
           "iteration_timeout_ms, max_consecutive_failures, started_at, max_idle_iterations, worktree_mode, max_cost, "
           "max_tokens, max_time_ms, verify_timeout_ms, verify, queued_at, paused_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.Bind(r.task_name).Bind(r.task_dir).Bind(r.project_root).Bind(Name(queued ? RunStatus::kQueued : RunStatus::kRunning))
        .Bind(r.max_iterations).Bind(r.model).Bind(r.agent)
        .Bind(r.promise).Bind(r.iteration_timeout_ms).Bind(r.max_consecutive_failures).Bind(r.started_at)
        .Bind(r.max_idle_iterations).Bind(r.worktree_mode).Bind(r.budget.max_cost).Bind(r.budget.max_tokens)
        .Bind(r.budget.max_time_ms).Bind(r.verify_timeout_ms);
    if (r.verify.empty()) s.BindNull();
    else s.Bind(r.verify);
    if (queued) s.Bind(r.started_at).Bind(r.started_at);  // queued since it was made
    else s.BindNull().BindNull();
    s.Step();
    int64_t id = db_.LastInsertId();
    tx.Commit();
    return id;
}

std::optional<RunRow> RunStore::GetRun(int64_t id)
{
    auto s = db_.Cached((std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?"));
    s.Bind(id);
    if (!s.Step()) return std::nullopt;
    return ReadRun(s);
}

std::optional<RunRow> RunStore::LatestRunForTask(const std::string& task_dir)
{
    auto s = db_.Cached((std::string("SELECT ") + kRunColumns + " FROM runs WHERE task_dir = ? ORDER BY id DESC LIMIT 1"));
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
        auto s = db_.Cached(sql);
        if (!task_dir.empty()) s.Bind(task_dir);
        while (s.Step()) out.push_back(ReadRun(s));
    }
    // Active runs are always listed, even when older than the limit.
    if (limit > 0) {
        for (RunRow& r : ActiveRuns()) {
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
    auto s = db_.Cached(task_dir.empty() ? "SELECT COUNT(*) FROM runs" : "SELECT COUNT(*) FROM runs WHERE task_dir = ?");
    if (!task_dir.empty()) s.Bind(task_dir);
    return s.Step() ? s.Int(0) : 0;
}

void RunStore::BeginIteration(int64_t run_id, int n, const std::string& session_id, int port, int64_t at,
                              const BoundaryEvent* event)
{
    sqlite::Transaction tx(db_);
    {
        auto s = db_.Cached("INSERT INTO iterations (run_id, n, session_id, started_at, port) VALUES (?, ?, ?, ?, ?)");
        s.Bind(run_id).Bind(n).Bind(session_id).Bind(at).BindNullableInt(port);
        s.Step();
    }
    {
        auto s = db_.Cached("UPDATE runs SET iteration = ?, session_id = ?, last_port = COALESCE(?, last_port) "
                      "WHERE id = ? AND status = 'running'");
        s.Bind(n).Bind(session_id).BindNullableInt(port).Bind(run_id);
        s.Step();
        if (sqlite3_changes(db_.handle()) != 1) throw StoreError("run " + std::to_string(run_id) + " is not running");
    }
    CommitWithEvent(tx, run_id, n, event);
}

void RunStore::FinishIteration(const IterationRow& it, const BoundaryEvent* event)
{
    sqlite::Transaction tx(db_);
    {
        auto s = db_.Cached("UPDATE iterations SET outcome = ?, ended_at = ?, error = ?, promise_seen = ?, tokens_in = ?, "
                      "tokens_out = ?, cost = ?, tokens_reasoning = ?, verify = ?, verify_exit = ? "
                      "WHERE run_id = ? AND n = ? AND outcome = ''");
        s.Bind(Name(it.outcome)).Bind(it.ended_at).Bind(it.error).Bind(it.promise_seen ? 1 : 0).Bind(it.tokens_in)
            .Bind(it.tokens_out).Bind(it.cost).Bind(it.tokens_reasoning);
        if (it.verify.empty()) s.BindNull();
        else s.Bind(it.verify);
        if (it.verify_exit) s.Bind(*it.verify_exit);
        else s.BindNull();
        s.Bind(it.run_id).Bind(it.n);
        s.Step();
        if (sqlite3_changes(db_.handle()) != 1) {
            // Already finished (e.g. recorded as interrupted): nothing more to add but the event.
            CommitWithEvent(tx, it.run_id, it.n, event);
            return;
        }
    }
    if (!it.checkpoint.empty()) {
        auto s = db_.Cached("UPDATE iterations SET checkpoint = ?, files_changed = ?, insertions = ?, deletions = ?, "
                            "commits = ? WHERE run_id = ? AND n = ?");
        s.Bind(it.checkpoint).Bind(it.files_changed).Bind(it.insertions).Bind(it.deletions).Bind(it.commits)
            .Bind(it.run_id).Bind(it.n);
        s.Step();
    }
    {
        // error and timeout count towards the failure limit; aborted/interrupted ones neither count nor reset.
        using enum OutcomeName;
        const char* streak = (it.outcome == kError || it.outcome == kTimeout)      ? "consecutive_failures + 1"
                             : (it.outcome == kContinue || it.outcome == kComplete) ? "0"
                                                                                    : "consecutive_failures";
        auto s = db_.Cached((std::string("UPDATE runs SET tokens_in = tokens_in + ?, tokens_out = tokens_out + ?, "
                                   "cost = cost + ?, tokens_reasoning = tokens_reasoning + ?, consecutive_failures = ") +
                       streak + " WHERE id = ? AND status = 'running'")
                          );
        s.Bind(it.tokens_in).Bind(it.tokens_out).Bind(it.cost).Bind(it.tokens_reasoning).Bind(it.run_id);
        s.Step();
    }
    CommitWithEvent(tx, it.run_id, it.n, event);
}

void RunStore::SetRunBase(int64_t run_id, const std::string& commit)
{
    auto s = db_.Cached("UPDATE runs SET base = ? WHERE id = ?");
    s.Bind(commit).Bind(run_id);
    s.Step();
}

void RunStore::SetRunStories(int64_t run_id, int passed, int total)
{
    auto s = db_.Cached("UPDATE runs SET stories_passed = ?, stories_total = ? WHERE id = ? AND status = 'running'");
    if (total < 0) s.BindNull().BindNull();
    else s.Bind(passed).Bind(total);
    s.Bind(run_id);
    s.Step();
}

void RunStore::SetRunWorktree(int64_t run_id, const std::string& worktree, const std::string& branch)
{
    auto s = db_.Cached("UPDATE runs SET worktree = ?, branch = ? WHERE id = ?");
    s.Bind(worktree).Bind(branch).Bind(run_id);
    s.Step();
}

void RunStore::SetIterationCheckpoint(const IterationRow& it)
{
    auto s = db_.Cached("UPDATE iterations SET checkpoint = ?, files_changed = ?, insertions = ?, deletions = ?, "
                        "commits = ? WHERE run_id = ? AND n = ? AND checkpoint IS NULL");
    s.Bind(it.checkpoint).Bind(it.files_changed).Bind(it.insertions).Bind(it.deletions).Bind(it.commits)
        .Bind(it.run_id).Bind(it.n);
    s.Step();
}

std::vector<IterationRow> RunStore::Iterations(int64_t run_id)
{
    auto s = db_.Cached((std::string("SELECT ") + kIterationColumns + " FROM iterations WHERE run_id = ? ORDER BY n"));
    s.Bind(run_id);
    std::vector<IterationRow> out;
    while (s.Step()) out.push_back(ReadIteration(s));
    return out;
}

std::optional<IterationRow> RunStore::UnfinishedIteration(int64_t run_id)
{
    auto s = db_.Cached((std::string("SELECT ") + kIterationColumns +
                   " FROM iterations WHERE run_id = ? AND outcome = '' ORDER BY n DESC LIMIT 1")
                      );
    s.Bind(run_id);
    if (!s.Step()) return std::nullopt;
    return ReadIteration(s);
}

std::vector<ImportOutcome> RunStore::ImportFinishedRuns(const std::vector<ImportedRun>& runs)
{
    for (const ImportedRun& in : runs) {
        if (!IsTerminal(in.run.status))
            throw StoreError("ImportFinishedRuns: '" + std::string(Name(in.run.status)) + "' is not a terminal status");
    }
    std::vector<ImportOutcome> out;
    sqlite::Transaction tx(db_);
    for (const ImportedRun& in : runs) {
        const RunRow& r = in.run;
        if (!in.legacy_id.empty()) {
            // Looked up first: an INSERT that conflicts would still consume an AUTOINCREMENT id.
            auto s = db_.Cached("SELECT id FROM runs WHERE legacy_id = ?");
            s.Bind(in.legacy_id);
            if (s.Step()) {
                out.push_back({s.Int(0), false});
                continue;
            }
        }
        {
            auto s = db_.Cached("INSERT INTO runs (task_name, task_dir, project_root, status, reason, iteration, max_iterations, "
                   "model, agent, promise, iteration_timeout_ms, max_consecutive_failures, started_at, ended_at, "
                   "session_id, last_port, tokens_in, tokens_out, cost, legacy_id, legacy_agent, legacy_session_type, "
                   "legacy_current_story, legacy_workspace_dir) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            s.Bind(r.task_name).Bind(r.task_dir).Bind(r.project_root).Bind(Name(r.status)).Bind(Name(r.reason)).Bind(r.iteration)
                .Bind(r.max_iterations).Bind(r.model).Bind(r.agent).Bind(r.promise).Bind(r.iteration_timeout_ms)
                .Bind(r.max_consecutive_failures).Bind(r.started_at).BindNullableInt(r.ended_at).Bind(r.session_id)
                .BindNullableInt(r.last_port).Bind(r.tokens_in).Bind(r.tokens_out).Bind(r.cost);
            if (in.legacy_id.empty()) s.BindNull();
            else s.Bind(in.legacy_id);
            s.Bind(r.legacy.agent).Bind(r.legacy.session_type).Bind(r.legacy.current_story).Bind(r.legacy.workspace_dir);
            s.Step();
        }
        int64_t id = db_.LastInsertId();
        for (const IterationRow& it : in.iterations) {
            auto s = db_.Cached("INSERT INTO iterations (run_id, n, session_id, outcome, started_at, ended_at, error, "
                          "promise_seen, tokens_in, tokens_out, cost, port) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            s.Bind(id).Bind(it.n).Bind(it.session_id).Bind(Name(it.outcome)).Bind(it.started_at).BindNullableInt(it.ended_at)
                .Bind(it.error).Bind(it.promise_seen ? 1 : 0).Bind(it.tokens_in).Bind(it.tokens_out).Bind(it.cost)
                .BindNullableInt(it.port);
            s.Step();
        }
        if (!in.note.empty()) {
            auto s = db_.Cached("INSERT INTO run_events (run_id, at, iteration, kind, data) VALUES (?, ?, ?, 'note', ?)");
            std::string data = boost::json::serialize(boost::json::object{{"message", in.note}});
            s.Bind(id).Bind(r.ended_at ? r.ended_at : r.started_at).Bind(r.iteration).Bind(data);
            s.Step();
        }
        for (const RunEvent& e : in.events) {
            auto s = db_.Cached("INSERT INTO run_events (run_id, at, iteration, kind, data) VALUES (?, ?, ?, ?, ?)");
            s.Bind(id).Bind(e.at).Bind(e.iteration).Bind(e.kind).Bind(e.data);
            s.Step();
        }
        out.push_back({id, true});
    }
    tx.Commit();
    return out;
}

std::optional<RunRow> RunStore::MostRecentlyActiveRun()
{
    auto s = db_.Cached((std::string("SELECT ") + kRunColumns +
                   " FROM runs WHERE session_id <> '' ORDER BY status = 'running' DESC, "
                   "MAX(started_at, COALESCE(ended_at, 0), COALESCE((SELECT MAX(COALESCE(i.ended_at, i.started_at)) "
                   "FROM iterations i WHERE i.run_id = runs.id), 0)) DESC, id DESC LIMIT 1")
                      );
    if (!s.Step()) return std::nullopt;
    return ReadRun(s);
}

std::optional<RunRow> RunStore::RunForSession(const std::string& session_id)
{
    if (session_id.empty()) return std::nullopt;
    auto s = db_.Cached((std::string("SELECT ") + kRunColumns +
                   " FROM runs WHERE session_id = ?1 OR id IN (SELECT run_id FROM iterations WHERE session_id = ?1) "
                   "ORDER BY id DESC LIMIT 1")
                      );
    s.Bind(session_id);
    if (!s.Step()) return std::nullopt;
    return ReadRun(s);
}



std::vector<RunEvent> RunStore::Events(int64_t run_id, int64_t after, int limit)
{
    auto s = db_.Cached("SELECT id, run_id, at, iteration, kind, data FROM run_events WHERE run_id = ? AND id > ? "
                  "ORDER BY id LIMIT ?");
    s.Bind(run_id).Bind(after).Bind(limit);
    std::vector<RunEvent> out;
    while (s.Step()) out.push_back(ReadEvent(s));
    return out;
}

std::vector<RunEvent> RunStore::EventsOfAllRuns(int64_t after, int limit)
{
    auto s = db_.Cached("SELECT id, run_id, at, iteration, kind, data FROM run_events WHERE id > ? ORDER BY id LIMIT ?");
    s.Bind(after).Bind(limit);
    std::vector<RunEvent> out;
    while (s.Step()) out.push_back(ReadEvent(s));
    return out;
}

int64_t RunStore::LastEventId()
{
    auto s = db_.Cached("SELECT COALESCE(MAX(id), 0) FROM run_events");
    return s.Step() ? s.Int(0) : 0;
}

void RunStore::RecordServerEvent(const std::string& event, int pid, int port, const std::string& detail, int64_t at)
{
    sqlite::Transaction tx(db_);
    auto s = db_.Cached("INSERT INTO server_history (at, event, pid, port, detail) VALUES (?, ?, ?, ?, ?)");
    s.Bind(at).Bind(event).BindNullableInt(pid).BindNullableInt(port).Bind(detail);
    s.Step();
    tx.Commit();
}

std::optional<ManagedServerRecord> RunStore::GetManagedServer()
{
    auto s = db_.Cached("SELECT pid, start_time, port, started_at FROM managed_server WHERE id = 1");
    if (!s.Step()) return std::nullopt;
    return ManagedServerRecord{static_cast<int>(s.Int(0)), static_cast<uint64_t>(s.Int(1)),
                               static_cast<int>(s.Int(2)), s.Int(3)};
}

void RunStore::SetManagedServer(const std::optional<ManagedServerRecord>& record)
{
    sqlite::Transaction tx(db_);
    if (record) {
        auto s = db_.Cached("INSERT OR REPLACE INTO managed_server (id, pid, start_time, port, started_at) VALUES (1, ?, ?, ?, ?)");
        s.Bind(record->pid).Bind(static_cast<int64_t>(record->start_time)).Bind(record->port).Bind(record->started_at);
        s.Step();
    } else {
        auto s = db_.Cached("DELETE FROM managed_server");
        s.Step();
    }
    tx.Commit();
}

}  // namespace ralph
