// LoopEngine: runs Ralph loops (SPEC §2), one coroutine per running run, on the daemon's
// io_context thread. It is, with an explicit `stop`, the only writer of run status. It is built
// from what it uses (the store, the server as ServerAccess, the opencode clients, the run
// defaults, a clock), so tests can make one without a Daemon.
#pragma once

#include "common/clock.h"
#include "daemon/checkpoint.h"
#include "daemon/config.h"
#include "daemon/event_hub.h"
#include "daemon/notifier.h"
#include "daemon/opencode_client.h"
#include "daemon/run_activity.h"
#include "daemon/server_access.h"
#include "daemon/store.h"
#include "daemon/task.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ralph {

class LoopEngine {
public:
    /// Everything given must outlive the engine. `run_defaults` is read when an iteration starts
    /// (ralphd.conf's [run], changed in place by a reload). With `idle_stop` above zero the server
    /// is stopped once no run has been active that long (server.idle_stop; ralphd gives 0 for an
    /// external server).
    /// `git` runs git for the checkpoints.
    LoopEngine(boost::asio::io_context& io, RunStore& store, ServerAccess& server, const RunSettings& run_defaults,
               Clock& clock, OpencodeClientFactory clients, Millis idle_stop, GitRunner& git);
    ~LoopEngine();

    /// Picks up runs a previous daemon left running: their unfinished iteration becomes
    /// `interrupted` and they go on from the next iteration.
    void ResumeLeftRuns();
    /// Daemon shutdown, phase one: abort in-flight sessions (their iterations become
    /// `interrupted`) and leave the runs `running`, to resume on the next start. Returns once no
    /// iteration is in flight; loops waiting for the server may remain (see WaitStopped).
    boost::asio::awaitable<void> Shutdown();
    /// Phase two, after the supervisor has shut down: waits for every loop to end.
    boost::asio::awaitable<void> WaitStopped();

    /// Starts a run of a task. Refuses a second running run (kAlreadyRunning). A task
    /// that cannot run (broken prd.json or ralph.ini) gives a run that failed at once
    /// (`task_invalid`), with the reason in `error`.
    Result<RunRow> Start(const Task& task, const RunSettings& settings, std::string* error);
    /// What a control did: `changed` false when the run was not in a state it applies to, and
    /// `message` says what happened or why nothing did.
    struct ControlResult {
        bool changed{false};
        std::string message;
    };
    // Controls (loop_controls.cpp, SPEC §8).
    /// Asks a running run to stop after its iteration, or at once (`now`); ends a queued or paused
    /// run at once (`stopped`, `user`).
    ControlResult Stop(int64_t run_id, bool now);
    /// Asks a running run to pause after its iteration, or at once (`now`: the iteration is
    /// aborted); pauses a queued run at once.
    ControlResult Pause(int64_t run_id, bool now);
    /// Goes on with a paused run (queued when max_running is reached), or withdraws a pause asked
    /// of a running run.
    ControlResult Resume(int64_t run_id);
    /// [daemon] max_running (0: no limit); starts queued runs that now have a place.
    void SetMaxRunning(int max_running);
    /// server.max_memory (bytes) and server.instance_idle (0: off each); see loop_server_watch.cpp.
    void SetServerLimits(int64_t max_memory, Millis instance_idle);

    /// Appends an event to a run's log and wakes followers.
    void Event(int64_t run_id, int iteration, const std::string& kind, boost::json::object data);
    /// Woken whenever a run gets an event or ends, per run or for any run; followers re-check.
    RunActivity& activity() { return activity_; }

    EventHub& hub() { return hub_; }

private:
    /// Records iteration n's start and its `iteration.start` event in one commit.
    void BeginIteration(int64_t run_id, int n, const std::string& session_id, int port);
    struct ActiveRun;
    struct IterationResult;

    void Spawn(int64_t run_id);
    boost::asio::awaitable<void> Loop(std::shared_ptr<ActiveRun> active);
    boost::asio::awaitable<void> RunIterations(ActiveRun& active);
    /// Records the end of `active.unsettled` and decides what follows; true when the loop must
    /// stop (the run ended, or ralphd is stopping). Throws StoreError; safe to call again then.
    bool Settle(ActiveRun& active, const RunRow& run);
    // Between iterations (loop_decide.cpp).
    /// The checks before an iteration (SPEC §2, §8): stop requests, limits, budgets, prd.json
    /// (stories recorded; complete only when verified), the task's files, and a pause asked. True
    /// when the loop must end (the run ended or paused).
    boost::asio::awaitable<bool> EndedBeforeIteration(ActiveRun& active, const RunRow& run);
    /// With `verify` set, whether a complete prd.json has passed it (verifying now if it was not).
    boost::asio::awaitable<bool> PrdCompletionVerified(ActiveRun& active, const RunRow& run, const std::string& root);
    /// After an iteration that claims completion: the verification gate, into `done`.
    boost::asio::awaitable<void> VerifyIteration(ActiveRun& active, const RunRow& run, IterationRow& done);
    struct VerifyVerdict {
        std::string verdict;      ///< passed, failed or timeout
        std::optional<int> exit;  ///< none after a timeout
    };
    /// Runs the run's verify command in `root`; a failure's output becomes the next prompt's
    /// {VERIFY_OUTPUT} and an entry in progress.txt.
    boost::asio::awaitable<VerifyVerdict> RunVerify(ActiveRun& active, const RunRow& run, const std::string& root,
                                                    const IterationRow* iteration);
    /// What the run has spent against its budgets.
    static BudgetSpent Spent(const RunRow& run);
    /// After an iteration that did not end the run: the back-off (SPEC §8) of a rate-limited one
    /// (from 1m, doubling to rate_limit_backoff_max, `failed` after rate_limit_give_up) or of a
    /// failed one (5s doubling to 2m), waking early for stop, pause and shutdown. True when the
    /// run ended.
    boost::asio::awaitable<bool> BackOff(ActiveRun& active, const IterationRow& done);
    /// ralphd.conf's settings under the task's ralph.ini, as they are now (a broken ini: the conf's).
    RunSettings SettingsNow(const RunRow& run) const;
    // Hooks (loop_hooks.cpp, SPEC §10): started beside the loop, their output into the run's log.
    void IterationEndHooks(const RunRow& run, const IterationRow& done);
    void RunEndHooks(int64_t run_id);
    /// ralphd's environment with the run's facts (SPEC §10), for hooks and verify.
    static std::vector<std::string> ChildEnvironment(const RunRow& run, const IterationRow* iteration);
    void SpawnHook(const std::string& which, const std::string& command, const RunRow& run,
                   const IterationRow* iteration, std::vector<std::string> extra_env = {});
    boost::asio::awaitable<void> RunHook(std::string which, LaunchSpec spec, int64_t run_id, int n);
    /// At shutdown: hooks still running are killed with their process groups.
    void EndHooks();
    boost::asio::awaitable<void> StopIdleServer();
    boost::asio::awaitable<IterationResult> Iterate(ActiveRun& active, const RunRow& run, int n);
    boost::asio::awaitable<void> Abort(const std::string& session_id, const std::string& directory);
    // Git checkpoints (loop_checkpoints.cpp, SPEC §9).
    /// Once per loop: finds the run's git work tree, takes the base snapshot of a new run, and the
    /// snapshot of an iteration a killed ralphd left without one.
    boost::asio::awaitable<void> PrepareCheckpoints(ActiveRun& active, const RunRow& run);
    /// Before a new run's first iteration: gives it a git worktree of its own when its
    /// `worktree` mode asks for one (SPEC §9). False when the run ended (no worktree could be made).
    boost::asio::awaitable<bool> PrepareWorktree(RunRow& run);
    /// At an iteration's start: remembers HEAD, to count the agent's own commits.
    boost::asio::awaitable<void> BeforeIteration(ActiveRun& active);
    /// At an iteration's end: its snapshot and what it changed, into `done`.
    boost::asio::awaitable<void> CheckpointIteration(ActiveRun& active, IterationRow& done);
    /// True when the last `max_idle_iterations` iterations (this one included) changed nothing.
    bool NoProgress(const RunRow& run, const IterationRow& done);
    /// Ends the run (if still running) and logs why.
    void Finish(int64_t run_id, RunStatus status, RunReason reason, const std::string& message = "");
    void OnServerState(ServerState state);
    /// Starts queued runs, oldest first, while fewer than max_running run.
    void StartQueued();
    /// The server's memory and idle projects' instances (loop_server_watch.cpp).
    boost::asio::awaitable<void> WatchServer();
    bool IterationInFlight() const;
    static void Wake(ActiveRun& active);

    boost::asio::io_context& io_;
    RunStore& store_;
    ServerAccess& server_;
    const RunSettings& run_defaults_;
    Clock& clock_;
    const Millis idle_stop_;
    OpencodeClientFactory clients_;
    GitRunner& git_;
    EventHub hub_;
    RunActivity activity_;
    std::map<int64_t, std::shared_ptr<ActiveRun>> active_;
    bool shutting_down_{false};  ///< set by Shutdown(): ralphd is stopping
    int max_running_{0};
    bool resumed_{false};  ///< ResumeLeftRuns has run: the queue may move
    int hooks_running_{0};
    int64_t max_memory_{0};
    Millis instance_idle_{0};
    bool draining_{false};  ///< the server is to restart for its memory: no new iteration starts
    /// draining_ off, and the loops it held woken.
    void EndDraining();
    int iterations_since_restart_{0};  ///< iterations ended since the last restart for memory
    std::set<std::shared_ptr<pid_t>> hook_pids_;  ///< of the hooks running (0 until started)
    Clock::TimePoint last_busy_;
    Notifier watch_wake_;  ///< wakes WatchServer early (new limits, shutdown)
    /// Repositories (work tree tops) in which a run's worktree is being made: git's `worktree
    /// add` reads the other worktrees' records and fails on one another is writing, so runs
    /// starting together in one repository make theirs one at a time.
    std::set<std::string> worktrees_being_made_;
    Notifier worktree_made_;
};

}  // namespace ralph
