// The state database's schema, as migration steps.
#include "daemon/store_schema.h"

#include "daemon/run_states.h"

#include <stdexcept>

namespace ralph {

namespace {

// Step N migrates a database of user_version N to N + 1. Never edit a step once released; append.
const char* const kSteps[] = {
    // 0 -> 1: the first schema.
    R"sql(
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_name TEXT NOT NULL,
    task_dir TEXT NOT NULL,
    project_root TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN (@STATUSES@)),
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
        CHECK (outcome IN (@OUTCOMES@)),
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
    // 3 -> 4: git (SPEC §9): the run's base snapshot (NULL outside git), its worktree and branch
    // (NULL when it works in place), how it chooses one, and its no-progress limit; each
    // iteration's snapshot and what it changed (NULL when none was taken).
    R"sql(
ALTER TABLE runs ADD COLUMN base TEXT;
ALTER TABLE runs ADD COLUMN worktree TEXT;
ALTER TABLE runs ADD COLUMN branch TEXT;
ALTER TABLE runs ADD COLUMN worktree_mode TEXT NOT NULL DEFAULT 'never';
ALTER TABLE runs ADD COLUMN max_idle_iterations INTEGER NOT NULL DEFAULT 0;
ALTER TABLE iterations ADD COLUMN checkpoint TEXT;
ALTER TABLE iterations ADD COLUMN files_changed INTEGER;
ALTER TABLE iterations ADD COLUMN insertions INTEGER;
ALTER TABLE iterations ADD COLUMN deletions INTEGER;
ALTER TABLE iterations ADD COLUMN commits INTEGER;
)sql",
    // 4 -> 5: runs you can leave overnight (SPEC §7, §8): why a run ended in words, its budgets (0 =
    // none), its verify command (NULL: none), its reasoning tokens and its prd.json's stories (NULL
    // without one); each iteration's reasoning tokens and verification (NULL when not run).
    R"sql(
ALTER TABLE runs ADD COLUMN reason_detail TEXT;
ALTER TABLE runs ADD COLUMN max_cost REAL NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN max_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN max_time_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN verify TEXT;
ALTER TABLE runs ADD COLUMN verify_timeout_ms INTEGER NOT NULL DEFAULT 600000;
ALTER TABLE runs ADD COLUMN tokens_reasoning INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN stories_passed INTEGER;
ALTER TABLE runs ADD COLUMN stories_total INTEGER;
ALTER TABLE iterations ADD COLUMN tokens_reasoning INTEGER NOT NULL DEFAULT 0;
ALTER TABLE iterations ADD COLUMN verify TEXT;
ALTER TABLE iterations ADD COLUMN verify_exit INTEGER;
)sql",
    // 5 -> 6: pause and the queue (SPEC §7, §8): the statuses `queued` and `paused` (active, like
    // `running`: one active run per task, and only a terminal run is frozen), the outcome
    // `rate_limited`, and when a run was queued, whether a pause is asked, since when it has not
    // been running and how long it was not, and until when it waits. SQLite cannot change a CHECK:
    // the two tables are made again (with foreign keys off, RunStore::Migrate) and copied.
    R"sql(
CREATE TABLE runs_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_name TEXT NOT NULL,
    task_dir TEXT NOT NULL,
    project_root TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN (@STATUSES@)),
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
    cost REAL NOT NULL DEFAULT 0,
    legacy_id TEXT,
    legacy_agent TEXT NOT NULL DEFAULT '',
    legacy_session_type TEXT NOT NULL DEFAULT '',
    legacy_current_story TEXT NOT NULL DEFAULT '',
    legacy_workspace_dir TEXT NOT NULL DEFAULT '',
    base TEXT,
    worktree TEXT,
    branch TEXT,
    worktree_mode TEXT NOT NULL DEFAULT 'never',
    max_idle_iterations INTEGER NOT NULL DEFAULT 0,
    reason_detail TEXT,
    max_cost REAL NOT NULL DEFAULT 0,
    max_tokens INTEGER NOT NULL DEFAULT 0,
    max_time_ms INTEGER NOT NULL DEFAULT 0,
    verify TEXT,
    verify_timeout_ms INTEGER NOT NULL DEFAULT 600000,
    tokens_reasoning INTEGER NOT NULL DEFAULT 0,
    stories_passed INTEGER,
    stories_total INTEGER,
    queued_at INTEGER,
    pause_requested TEXT NOT NULL DEFAULT '',
    paused_at INTEGER,
    paused_ms INTEGER NOT NULL DEFAULT 0,
    waiting_until INTEGER
);
INSERT INTO runs_new (id, task_name, task_dir, project_root, status, reason, iteration, max_iterations, model, agent,
    promise, iteration_timeout_ms, max_consecutive_failures, consecutive_failures, stop_requested, started_at, ended_at,
    session_id, last_port, tokens_in, tokens_out, cost, legacy_id, legacy_agent, legacy_session_type,
    legacy_current_story, legacy_workspace_dir, base, worktree, branch, worktree_mode, max_idle_iterations,
    reason_detail, max_cost, max_tokens, max_time_ms, verify, verify_timeout_ms, tokens_reasoning, stories_passed,
    stories_total)
SELECT id, task_name, task_dir, project_root, status, reason, iteration, max_iterations, model, agent,
    promise, iteration_timeout_ms, max_consecutive_failures, consecutive_failures, stop_requested, started_at, ended_at,
    session_id, last_port, tokens_in, tokens_out, cost, legacy_id, legacy_agent, legacy_session_type,
    legacy_current_story, legacy_workspace_dir, base, worktree, branch, worktree_mode, max_idle_iterations,
    reason_detail, max_cost, max_tokens, max_time_ms, verify, verify_timeout_ms, tokens_reasoning, stories_passed,
    stories_total FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE UNIQUE INDEX runs_one_active_per_task ON runs (task_dir) WHERE status IN ('queued', 'running', 'paused');
CREATE INDEX runs_by_task ON runs (task_dir, id);
CREATE UNIQUE INDEX runs_by_legacy_id ON runs (legacy_id);
CREATE TRIGGER runs_terminal_final BEFORE UPDATE ON runs WHEN OLD.status NOT IN ('queued', 'running', 'paused')
BEGIN SELECT RAISE(ABORT, 'run has ended: a terminal run never changes'); END;
CREATE TRIGGER runs_terminal_not_deleted BEFORE DELETE ON runs
BEGIN SELECT RAISE(ABORT, 'runs are history: never deleted'); END;
CREATE TABLE iterations_new (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    n INTEGER NOT NULL,
    session_id TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL DEFAULT ''
        CHECK (outcome IN (@OUTCOMES@)),
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    error TEXT NOT NULL DEFAULT '',
    promise_seen INTEGER NOT NULL DEFAULT 0,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    port INTEGER,
    checkpoint TEXT,
    files_changed INTEGER,
    insertions INTEGER,
    deletions INTEGER,
    commits INTEGER,
    tokens_reasoning INTEGER NOT NULL DEFAULT 0,
    verify TEXT,
    verify_exit INTEGER,
    PRIMARY KEY (run_id, n)
);
INSERT INTO iterations_new SELECT run_id, n, session_id, outcome, started_at, ended_at, error, promise_seen, tokens_in,
    tokens_out, cost, port, checkpoint, files_changed, insertions, deletions, commits, tokens_reasoning, verify,
    verify_exit FROM iterations;
DROP TABLE iterations;
ALTER TABLE iterations_new RENAME TO iterations;
)sql",
};

static_assert(sizeof kSteps / sizeof kSteps[0] == kSchemaVersion);

std::string Replace(std::string text, const std::string& from, const std::string& to)
{
    for (std::size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size())
        text.replace(pos, from.size(), to);
    return text;
}

}  // namespace

std::string SchemaStep(int version)
{
    if (version < 0 || version >= kSchemaVersion) throw std::out_of_range("no schema step from version " + std::to_string(version));
    // The CHECK lists come from the string tables, as they were at the step's own version.
    std::string sql = Replace(kSteps[version], "@STATUSES@", SqlList(RunStatus{}, version + 1));
    return Replace(sql, "@OUTCOMES@", SqlList(OutcomeName{}, version + 1));
}

}  // namespace ralph
