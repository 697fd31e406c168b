// The controls of a run from outside its loop (SPEC §7, §8): stop, pause and resume, and the queue
// of runs waiting under [daemon] max_running. Part of LoopEngine.
#include "common/json_util.h"
#include "common/log.h"
#include "daemon/loop_active_run.h"

namespace ralph {

namespace json = boost::json;

namespace {

std::string Id(int64_t id) { return std::to_string(id); }
std::string StatusName(const RunRow& run) { return std::string(Name(run.status)); }

}  // namespace

LoopEngine::ControlResult LoopEngine::Stop(int64_t run_id, bool now)
{
    auto run = store_.GetRun(run_id);
    if (!run) return {false, "no run " + Id(run_id)};
    if (run->status == RunStatus::kQueued || run->status == RunStatus::kPaused) {
        // No loop and no session: it ends now, with the iterations it has.
        Finish(run_id, RunStatus::kStopped, RunReason::kUser, "stopped while " + StatusName(*run));
        return {true, "run " + Id(run_id) + " was " + StatusName(*run) + " and is stopped"};
    }
    if (!store_.RequestStop(run_id, now)) return {false, "run " + Id(run_id) + " is not active (" + StatusName(*run) + ")"};
    Event(run_id, run->iteration, "note",
          Obj("message", now ? "stop requested: aborting the current iteration"
                             : "stop requested: the run stops after the current iteration"));
    if (auto it = active_.find(run_id); it != active_.end()) {
        if (now) it->second->stop_now = true;
        Wake(*it->second);  // also ends a back-off
    }
    return {true, now ? "run " + Id(run_id) + " is stopping now" : "run " + Id(run_id) + " stops after its current iteration"};
}

LoopEngine::ControlResult LoopEngine::Pause(int64_t run_id, bool now)
{
    auto run = store_.GetRun(run_id);
    if (!run) return {false, "no run " + Id(run_id)};
    if (run->status == RunStatus::kPaused) return {false, "run " + Id(run_id) + " is paused already; resume it with: ralph resume " + Id(run_id)};
    if (run->status == RunStatus::kQueued) {
        if (!store_.MoveActiveRun(run_id, RunStatus::kQueued, RunStatus::kPaused, NowMillis()))
            return {false, "run " + Id(run_id) + " changed meanwhile"};
        Event(run_id, run->iteration, "note", Obj("message", "paused while queued; resume with: ralph resume " + Id(run_id)));
        return {true, "run " + Id(run_id) + " is paused (it was queued)"};
    }
    if (!store_.RequestPause(run_id, now)) return {false, "run " + Id(run_id) + " is not active (" + StatusName(*run) + ")"};
    Event(run_id, run->iteration, "note",
          Obj("message", now ? "pause requested: aborting the current iteration"
                             : "pause requested: the run pauses after the current iteration"));
    if (auto it = active_.find(run_id); it != active_.end()) {
        if (now) it->second->pause_now = true;
        Wake(*it->second);  // also a loop waiting for the server or backing off: it pauses now
    }
    return {true, now ? "run " + Id(run_id) + " is pausing now" : "run " + Id(run_id) + " pauses after its current iteration"};
}

LoopEngine::ControlResult LoopEngine::Resume(int64_t run_id)
{
    auto run = store_.GetRun(run_id);
    if (!run) return {false, "no run " + Id(run_id)};
    if (run->status == RunStatus::kRunning) {
        if (!store_.CancelPause(run_id)) return {false, "run " + Id(run_id) + " is running, not paused"};
        if (auto it = active_.find(run_id); it != active_.end()) it->second->pause_now = false;
        Event(run_id, run->iteration, "note", Obj("message", "pause withdrawn: the run goes on"));
        return {true, "run " + Id(run_id) + " goes on: its pause was withdrawn"};
    }
    if (run->status != RunStatus::kPaused) return {false, "run " + Id(run_id) + " is " + StatusName(*run) + ", not paused"};
    if (shutting_down_) return {false, "ralphd is shutting down; resume the run when it is back"};
    const bool queue = max_running_ > 0 && store_.CountRunning() >= max_running_;
    if (!store_.MoveActiveRun(run_id, RunStatus::kPaused, queue ? RunStatus::kQueued : RunStatus::kRunning, NowMillis()))
        return {false, "run " + Id(run_id) + " changed meanwhile"};
    if (queue) {
        Event(run_id, run->iteration, "note",
              Obj("message", "resumed into the queue: " + std::to_string(max_running_) + " runs are running ([daemon] max_running)"));
        return {true, "run " + Id(run_id) + " is queued: " + std::to_string(max_running_) + " runs are running"};
    }
    Event(run_id, run->iteration, "note", Obj("message", "resumed: the run goes on"));
    Spawn(run_id);
    return {true, "run " + Id(run_id) + " goes on"};
}

void LoopEngine::SetMaxRunning(int max_running)
{
    max_running_ = max_running;
    StartQueued();
}

void LoopEngine::StartQueued()
{
    // Not before ResumeLeftRuns has picked up the runs a previous ralphd left running.
    if (shutting_down_ || !resumed_) return;
    while (max_running_ == 0 || store_.CountRunning() < max_running_) {
        std::optional<RunRow> next = store_.NextQueued();
        if (!next) return;
        if (!store_.MoveActiveRun(next->id, RunStatus::kQueued, RunStatus::kRunning, NowMillis())) return;
        Log(LogLevel::Info) << "run " << next->id << " leaves the queue: " << next->task_dir;
        Event(next->id, next->iteration, "note", Obj("message", "started from the queue"));
        Spawn(next->id);
    }
}

}  // namespace ralph
