// RunStore: ralph's state in SQLite (WAL). Every state change is one BEGIN IMMEDIATE transaction,
// committed before the caller replies. Only FinishRun writes a terminal status, and the schema
// itself refuses any change to a run that is no longer running (trigger runs_terminal_final).
// Owned by the daemon's io_context thread; not thread-safe.
#pragma once

#include "common/duration.h"
#include "common/sqlite.h"
#include "daemon/budget.h"
#include "daemon/run_states.h"
#include "daemon/store_schema.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ralph {

/// What the earlier Python ralph recorded of an imported loop; all empty for ralph's own runs.
struct LegacyFields {
    std::string agent;          ///< its agent CLI: claude, opencode, ...
    std::string session_type;   ///< tmux or opencode-server
    std::string current_story;  ///< the story it last worked on
    std::string workspace_dir;
    bool empty() const { return agent.empty() && session_type.empty() && current_story.empty() && workspace_dir.empty(); }
};

struct RunRow {
    int64_t id{0};
    std::string task_name, task_dir, project_root;
    RunStatus status{RunStatus::kRunning};
    RunReason reason{RunReason::kNone};  ///< kNone while running
    int iteration{0};    ///< the latest iteration started (0 before the first)
    int max_iterations{10};
    std::string model, agent, promise;
    int64_t iteration_timeout_ms{0};
    int max_consecutive_failures{3};
    int consecutive_failures{0};
    std::string stop_requested;  ///< "", "after_iteration" or "now"
    int64_t started_at{0}, ended_at{0};  ///< unix milliseconds; ended_at 0 while running
    std::string session_id;
    int last_port{0};
    int64_t tokens_in{0}, tokens_out{0};
    double cost{0};
    std::string base;             ///< snapshot 0's commit (SPEC §9); empty outside git
    std::string worktree, branch; ///< the run's own git worktree and branch; empty when in place
    std::string worktree_mode{"never"};  ///< auto, always or never (SPEC §9)
    int max_idle_iterations{0};   ///< no_progress after this many idle iterations; 0 = off
    std::string reason_detail;    ///< why it ended, in words (SPEC §7); empty for none
    RunBudget budget;             ///< SPEC §8; zeros: none
    std::string verify;           ///< the verification command (SPEC §8); empty: none
    int64_t verify_timeout_ms{600000};
    int64_t tokens_reasoning{0};
    int stories_passed{-1}, stories_total{-1};  ///< of its prd.json when last read; -1 without one
    // Pause and the queue (SPEC §8).
    int64_t queued_at{0};         ///< when it was last queued; 0 if never
    std::string pause_requested;  ///< "", "after_iteration" or "now"
    int64_t paused_at{0};         ///< since when it has been queued or paused; 0 while running or ended
    int64_t paused_ms{0};         ///< time spent queued or paused before paused_at
    int64_t waiting_until{0};     ///< backing off until then (unix ms); 0 when not
    LegacyFields legacy;

    /// Where the run works: its worktree, else the project (SPEC §9).
    const std::string& work_root() const { return worktree.empty() ? project_root : worktree; }
    /// The task directory in the tree it works in.
    std::string work_task_dir() const
    {
        if (worktree.empty() || task_dir.rfind(project_root + "/", 0) != 0) return task_dir;
        return worktree + task_dir.substr(project_root.size());
    }
};

struct IterationRow {
    int64_t run_id{0};
    int n{0};
    std::string session_id;
    OutcomeName outcome{OutcomeName::kNone};  ///< kNone while the iteration is under way
    int64_t started_at{0}, ended_at{0};
    std::string error;
    bool promise_seen{false};
    int64_t tokens_in{0}, tokens_out{0};
    double cost{0};
    int port{0};
    /// The snapshot taken at its end (SPEC §9); empty when none was (outside git, or it failed).
    std::string checkpoint;
    int files_changed{0}, insertions{0}, deletions{0}, commits{0};
    int64_t checkpoint_ms{0};  ///< how long its snapshot took; in its iteration.end event only, not stored
    int64_t tokens_reasoning{0};
    std::string verify;  ///< "passed", "failed" or "timeout" (SPEC §8); empty when not run
    std::optional<int> verify_exit;  ///< the verify command's exit status; none after a timeout
};

struct RunEvent {
    int64_t id{0};
    int64_t run_id{0};
    int64_t at{0};
    int iteration{0};
    std::string kind;  ///< iteration.start, iteration.end, text, tool, error, run.end, note
    std::string data;  ///< JSON object text
};

/// The managed opencode server a daemon started, so that its successor can find it after a crash.
struct ManagedServerRecord {
    int pid{0};
    uint64_t start_time{0};  ///< field 22 of /proc/PID/stat, to tell a reused pid apart
    int port{0};
    int64_t started_at{0};
};

/// A finished run recorded elsewhere (the earlier Python ralph), to be kept as history.
struct ImportedRun {
    RunRow run;                            ///< a terminal status; id is ignored
    std::string legacy_id;                 ///< its key where it came from: never imported twice; "" for none
    std::vector<IterationRow> iterations;  ///< run_id is ignored
    std::string note;                      ///< recorded as the run's `note` event when not empty
    std::vector<RunEvent> events;          ///< its log as is (run_id and id are ignored)
};

struct ImportOutcome {
    int64_t run_id{0};     ///< the new run, or the one imported earlier under the same legacy_id
    bool inserted{false};  ///< false: already imported, nothing written
};

class RunStore {
public:
    static constexpr int kSchemaVersion = ralph::kSchemaVersion;

    /// Opens (creating with mode 0600) and migrates the database. Throws StoreError with a
    /// message a user can act on, e.g. for a database written by a newer ralph.
    explicit RunStore(const std::string& path);
    ~RunStore();
    RunStore(const RunStore&) = delete;
    RunStore& operator=(const RunStore&) = delete;

    int SchemaVersion();
    const std::string& path() const { return path_; }

    /// Inserts a run (`running`, or `queued` when `queued`) and returns its id; std::nullopt when
    /// the task already has an active run.
    std::optional<int64_t> InsertRun(const RunRow& run, bool queued = false);
    std::optional<RunRow> GetRun(int64_t id);
    std::optional<RunRow> LatestRunForTask(const std::string& task_dir);
    /// The task's queued, running or paused run.
    std::optional<RunRow> ActiveRunForTask(const std::string& task_dir);
    /// Running runs first, then the newest; `limit` 0 means every run.
    std::vector<RunRow> ListRuns(const std::string& task_dir, int limit);
    /// Queued, running and paused runs, oldest first.
    std::vector<RunRow> ActiveRuns();
    std::vector<RunRow> RunningRuns();
    int64_t CountRunning();
    /// The queued run that waited longest.
    std::optional<RunRow> NextQueued();
    /// Moves an active run from status `from` to `to` (queued, running, paused), keeping the time
    /// it spent not running (for max_time) and clearing a pause request; false when it was not `from`.
    bool MoveActiveRun(int64_t id, RunStatus from, RunStatus to, int64_t at);
    /// Asks a running run to pause after its iteration, or at once (`now`); false when not running.
    bool RequestPause(int64_t id, bool now);
    /// Withdraws a pause asked of a running run; false when none was asked.
    bool CancelPause(int64_t id);
    /// Until when a running run backs off (unix ms); 0: it does not.
    void SetWaitingUntil(int64_t id, int64_t until);
    struct RateLimited {
        int total{0};        ///< rate_limited iterations of the run (they do not count towards max_iterations)
        int streak{0};       ///< of them, how many end the run's iterations in a row
        int64_t since{0};    ///< when the first of the streak started (unix ms); 0 without a streak
    };
    RateLimited RateLimitedIterations(int64_t run_id);
    /// How many runs there are (of one task when `task_dir` is not empty).
    int64_t CountRuns(const std::string& task_dir);

    /// The log event that marks an iteration's start or end (`iteration.start`, `iteration.end`):
    /// written in the iteration's own transaction, so that each iteration boundary is one commit.
    /// Behind events kept in memory (see AppendEvent) it is appended after them instead, in order.
    struct BoundaryEvent {
        std::string kind;
        std::string data;  ///< JSON
        int64_t at{0};
    };
    /// Records iteration n of a run with its session (before the prompt is sent) and makes it current.
    void BeginIteration(int64_t run_id, int n, const std::string& session_id, int port, int64_t at,
                        const BoundaryEvent* event = nullptr);
    /// Ends an iteration, adds its tokens and cost to the run and updates the failure streak.
    void FinishIteration(const IterationRow& it, const BoundaryEvent* event = nullptr);
    /// The run's base snapshot, once taken.
    void SetRunBase(int64_t run_id, const std::string& commit);
    /// The worktree and branch a run works in (recorded before the worktree is made, so that
    /// other runs starting meanwhile see that this one does not work in place).
    void SetRunWorktree(int64_t run_id, const std::string& worktree, const std::string& branch);
    /// A snapshot taken for an iteration that ended without one (ralphd was killed before it).
    void SetIterationCheckpoint(const IterationRow& it);
    std::vector<IterationRow> Iterations(int64_t run_id);
    /// The run's iteration whose outcome is still kNone, if any (left by a crash).
    std::optional<IterationRow> UnfinishedIteration(int64_t run_id);

    /// The only writer of a terminal status. Returns false (and changes nothing) when the run
    /// is not active.
    bool FinishRun(int64_t id, RunStatus status, RunReason reason, int64_t at, const std::string& reason_detail = "");
    /// Its prd.json's stories as last read; -1, -1 without one.
    void SetRunStories(int64_t run_id, int passed, int total);
    /// Marks a running run to stop; false when it is not running (a queued or paused run is
    /// ended at once by FinishRun instead).
    bool RequestStop(int64_t id, bool now);

    /// Appends to a run's log and returns the event's id. When the database cannot be written
    /// (a full disk, a lock held elsewhere) the event is kept in memory, in order, returns 0, and
    /// is written by a later AppendEvent or FlushKeptEvents (store_guard.cpp). Beyond
    /// kKeptEventsLimit events are only counted, and a `note` event says how many were lost.
    int64_t AppendEvent(int64_t run_id, int iteration, const std::string& kind, const std::string& data, int64_t at);
    std::vector<RunEvent> Events(int64_t run_id, int64_t after, int limit);
    /// Events of every run with an id above `after`, in id order (ids grow across runs).
    std::vector<RunEvent> EventsOfAllRuns(int64_t after, int limit);
    /// The largest event id written so far (0 when there is none).
    int64_t LastEventId();
    /// Writes the events kept in memory (never waiting for a lock); returns how many it wrote.
    std::size_t FlushKeptEvents();
    std::size_t kept_events() const { return kept_.size(); }
    /// Events dropped since the start because too many were kept; each run's log has a note.
    int64_t lost_events() const { return lost_total_; }
    /// Why the last write of an event failed, e.g. "database or disk is full".
    const std::string& kept_events_reason() const { return kept_reason_; }
    static constexpr std::size_t kKeptEventsLimit = 10000;
    static constexpr std::size_t kKeptBytesLimit = 32 << 20;
    void SetKeptEventsLimitForTest(std::size_t limit) { kept_limit_ = limit; }

    /// When ralph.db, its -wal or its -shm was deleted while open (ralphd went on writing into
    /// unlinked files, lost at its exit): writes what this connection sees to a new file with
    /// SQLite's backup API, renames it to path() and reopens it there. Run ids go on (the
    /// AUTOINCREMENT counters are copied too). Returns true when it put the database back, false
    /// when nothing was missing; throws StoreError when it could not (tried again next time).
    bool RestoreIfDeleted();

    void RecordServerEvent(const std::string& event, int pid, int port, const std::string& detail, int64_t at);
    std::optional<ManagedServerRecord> GetManagedServer();
    void SetManagedServer(const std::optional<ManagedServerRecord>& record);

    /// Inserts finished runs directly with their terminal status, in one transaction (the
    /// terminal trigger guards only UPDATE, and nothing here ever updates a run): the earlier
    /// ralph's history, and the benchmark's generated one. An entry whose legacy_id is already
    /// present is left out. Throws StoreError, and inserts nothing, for a
    /// status that is not terminal.
    std::vector<ImportOutcome> ImportFinishedRuns(const std::vector<ImportedRun>& runs);

    /// Of the runs with a session, the most recently active: running runs first (the one whose
    /// iteration started or ended last), then the others by their last activity.
    std::optional<RunRow> MostRecentlyActiveRun();
    /// The run that recorded an opencode session, as one of its iterations' or as its own.
    std::optional<RunRow> RunForSession(const std::string& session_id);

    /// Test hook: raw SQL, for checking the schema's own guards.
    void ExecForTest(const std::string& sql);
    /// Test hook: creates a database at an earlier schema version (the first `version` steps).
    static void CreateAtVersionForTest(const std::string& path, int version);

private:
    struct FileIdentity {
        uint64_t dev{0}, ino{0};  ///< ino 0: the file did not exist when the database was opened
    };
    struct LostEvents {
        int64_t count{0};
        int iteration{0};
    };
    static constexpr int kBusyTimeoutMs = 5000;

    /// Opens db_ at path_ with ralph's settings; on failure db_ is null and StoreError is thrown.
    void OpenConnection();
    void RememberFiles();
    bool AnyFileDeleted() const;
    /// Writes `events` and, when `with_lost_notes`, the notes for lost_ in one transaction,
    /// popping them once committed. Returns SQLITE_OK or the failing SQLite result code.
    int WriteEvents(std::deque<RunEvent>& events, bool with_lost_notes);
    /// Inserts one event (in the open transaction); SQLITE_OK or the failing result code.
    int InsertEvent(const RunEvent& event);
    /// Commits `tx` with `event` (if any) in it, or, behind events kept in memory, appends the
    /// event after the commit so that the log stays in order.
    void CommitWithEvent(sqlite::Transaction& tx, int64_t run_id, int iteration, const BoundaryEvent* event);
    /// Queues an event behind the kept ones; false when over the limits (then only counted as lost).
    bool Keep(RunEvent event);
    void Migrate();
    /// Sets `column` (stop_requested or pause_requested) of a running run to "now" or
    /// "after_iteration"; false when the run is not running.
    bool RequestOfRunning(const char* column, int64_t id, bool now);

    std::string path_;
    sqlite::Database db_;
    std::array<FileIdentity, 3> files_{};  ///< path_, -wal, -shm as opened
    std::deque<RunEvent> kept_;            ///< events not written yet, oldest first
    std::size_t kept_limit_{kKeptEventsLimit};
    std::size_t kept_bytes_{0};
    std::map<int64_t, LostEvents> lost_;   ///< per run: dropped events not yet noted in its log
    int64_t lost_total_{0};
    int64_t last_event_id_{0};
    std::string kept_reason_;
};


}  // namespace ralph
