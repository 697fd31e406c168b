// What ends a run between its iterations (SPEC §2, §8): the checks before each iteration (stop
// requests, limits, budgets, prd.json, the task's files), the verification gate, and the decision
// after an iteration (Settle). Part of LoopEngine; the iteration itself is in loop_engine.cpp.
#include "common/json_util.h"
#include "common/log.h"
#include "common/text.h"
#include "daemon/child_command.h"
#include "daemon/loop_active_run.h"
#include "daemon/run_checks.h"

#include <sys/stat.h>

namespace ralph {

namespace json = boost::json;
namespace asio = boost::asio;

namespace {

bool IsDirectory(const std::string& path)
{
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

constexpr int kVerifyOutputLines = 50;

}  // namespace

BudgetSpent LoopEngine::Spent(const RunRow& run)
{
    // Time spent running: not queued or paused (SPEC §8).
    const int64_t now = NowMillis();
    const int64_t not_running = run.paused_ms + (run.paused_at ? now - run.paused_at : 0);
    return {run.cost, run.tokens_in + run.tokens_out + run.tokens_reasoning,
            Millis(std::max<int64_t>(0, now - run.started_at - not_running))};
}

void LoopEngine::Finish(int64_t run_id, RunStatus status, RunReason reason, const std::string& message)
{
    auto run = store_.GetRun(run_id);
    if (!store_.FinishRun(run_id, status, reason, NowMillis(), message)) return;
    json::object data{{"status", Name(status)}, {"reason", Name(reason)}};
    if (!message.empty()) data["message"] = message;
    Event(run_id, run ? run->iteration : 0, "run.end", std::move(data));
    Log(LogLevel::Info) << "run " << run_id << " " << status << " (" << reason << ")"
                        << (message.empty() ? "" : ": " + message);
    RunEndHooks(run_id);
    StartQueued();  // its place is free
}

asio::awaitable<bool> LoopEngine::EndedBeforeIteration(ActiveRun& active, const RunRow& run)
{
    const int64_t id = run.id;
    if (!run.stop_requested.empty()) {
        Finish(id, RunStatus::kStopped, RunReason::kUser);
        co_return true;
    }
    // A rate-limited iteration does not count towards the limit (SPEC §8).
    const int limited = run.iteration > 0 ? store_.RateLimitedIterations(id).total : 0;
    if (run.iteration - limited >= run.max_iterations) {
        Finish(id, RunStatus::kStopped, RunReason::kMaxIterations);
        co_return true;
    }
    if (std::string crossed = BudgetCrossed(run.budget, Spent(run)); !crossed.empty()) {
        Finish(id, RunStatus::kStopped, RunReason::kBudget, crossed);
        co_return true;
    }
    // In its worktree, the task directory and prd.json are the worktree's (the agent's) copy;
    // until the worktree is made (or made again after a kill), the project's.
    std::string task_dir = run.task_dir, root = run.project_root;
    if (active.checkpoints_prepared) {
        task_dir = run.work_task_dir();
        root = run.work_root();
    }
    PrdStatus prd = ReadPrd(task_dir + "/prd.json");
    if (prd.present && !prd.valid()) {
        Finish(id, RunStatus::kFailed, RunReason::kTaskInvalid, prd.error);
        co_return true;
    }
    const int passed = prd.valid() ? prd.passing : -1, total = prd.valid() ? prd.total : -1;
    if (passed != run.stories_passed || total != run.stories_total) {
        store_.SetRunStories(id, passed, total);
        activity_.Notify(id);
    }
    if (prd.complete() && co_await PrdCompletionVerified(active, run, root)) {
        Finish(id, RunStatus::kCompleted, RunReason::kPrdComplete);
        co_return true;
    }
    if (!IsDirectory(task_dir) || !IsDirectory(root)) {
        Finish(id, RunStatus::kFailed, RunReason::kTaskInvalid, "the task directory " + task_dir + " or its project " + root + " no longer exists");
        co_return true;
    }
    // The prompt may have been emptied or replaced by a directory since the run started.
    if (auto problem = PromptProblem(Task{run.task_name, task_dir, root}); !problem.empty()) {
        Finish(id, RunStatus::kFailed, RunReason::kTaskInvalid, problem);
        co_return true;
    }
    if (!run.pause_requested.empty() && store_.MoveActiveRun(id, RunStatus::kRunning, RunStatus::kPaused, NowMillis())) {
        // The loop ends; ralph resume starts a new one (SPEC §8).
        Event(id, run.iteration, "note",
              Obj("message", "paused after iteration " + std::to_string(run.iteration) + "; resume with: ralph resume " +
                                 std::to_string(id)));
        Log(LogLevel::Info) << "run " << id << " paused";
        StartQueued();
        co_return true;
    }
    co_return false;
}

asio::awaitable<bool> LoopEngine::PrdCompletionVerified(ActiveRun& active, const RunRow& run, const std::string& root)
{
    if (run.verify.empty()) co_return true;
    // An iteration that claimed completion was verified when it ended (VerifyIteration).
    std::vector<IterationRow> iterations = store_.Iterations(run.id);
    if (!iterations.empty() && !iterations.back().verify.empty()) co_return iterations.back().verify == "passed";
    // Complete before any iteration (or after one that did not claim it): verify now, once. The
    // loop comes back here every second while it waits for the server.
    if (active.prd_verified && active.prd_verified->first == run.iteration) co_return active.prd_verified->second;
    VerifyVerdict verdict = co_await RunVerify(active, run, root, nullptr);
    active.prd_verified = std::make_pair(run.iteration, verdict.verdict == "passed");
    co_return active.prd_verified->second;
}

asio::awaitable<void> LoopEngine::VerifyIteration(ActiveRun& active, const RunRow& run, IterationRow& done)
{
    if (run.verify.empty() || shutting_down_) co_return;
    // Only a claim of completion is verified: the promise, or every story of prd.json passing.
    bool claims = done.outcome == OutcomeName::kComplete ||
                  (done.outcome == OutcomeName::kContinue && ReadPrd(run.work_task_dir() + "/prd.json").complete());
    if (!claims) co_return;
    active.head_after_checkpoint.clear();  // the command may commit: BeforeIteration asks git again
    VerifyVerdict verdict = co_await RunVerify(active, run, run.work_root(), &done);
    done.verify = verdict.verdict;
    done.verify_exit = verdict.exit;
    if (verdict.verdict != "passed" && done.outcome == OutcomeName::kComplete) done.outcome = OutcomeName::kContinue;  // the run goes on
}

asio::awaitable<LoopEngine::VerifyVerdict> LoopEngine::RunVerify(ActiveRun& active, const RunRow& run,
                                                                const std::string& root, const IterationRow* iteration)
{
    const int n = iteration ? iteration->n : run.iteration;
    LaunchSpec spec;
    spec.program = "/bin/sh";
    spec.args = {"-c", "exec 2>&1\n" + run.verify};  // one stream, in the order written
    spec.env = ChildEnvironment(run, iteration);
    spec.cwd = root;
    const Millis timeout(run.verify_timeout_ms);
    Event(run.id, n, "note", Obj("message", "verifying the claim of completion: " + run.verify));
    Result<CommandOutput> ran = co_await RunChildCommand(git_.launcher(), std::move(spec), timeout);
    VerifyVerdict v;
    std::string what;
    if (!ran) {
        v.verdict = "failed";
        what = "could not be started: " + ran.status().message();
    } else if (ran->timed_out) {
        v.verdict = "timeout";
        what = "took longer than " + FormatDuration(timeout) + " and was killed";
    } else {
        v.exit = ran->exit.code >= 0 ? ran->exit.code : 128 + ran->exit.signal;
        v.verdict = *v.exit == 0 ? "passed" : "failed";
        what = ran->exit.Describe();
    }
    if (v.verdict == "passed") {
        active.verify_output.clear();
        Event(run.id, n, "note", Obj("message", "verification passed", "verify", v.verdict, "verify_exit", *v.exit));
        co_return v;
    }
    // The agent learns why in its next prompt ({VERIFY_OUTPUT}) and in progress.txt (SPEC §8).
    std::string output = ran ? ToValidUtf8(LastLines(ran->out, kVerifyOutputLines)) : "";
    active.verify_output = "The verification command `" + run.verify + "` " + what +
                           " after the claim of completion, so the task is not complete. The last lines of its output:\n" +
                           output + "\n";
    AppendToFile(run.work_task_dir() + "/progress.txt", "\n## ralph: verification failed after iteration " +
                                                            std::to_string(n) + " of run " + std::to_string(run.id) +
                                                            "\n" + active.verify_output);
    json::object note = Obj("message", "verification " + v.verdict + ": `" + run.verify + "` " + what, "verify", v.verdict);
    note["verify_exit"] = v.exit ? json::value(*v.exit) : json::value(nullptr);
    note["output"] = output;
    Event(run.id, n, "note", std::move(note));
    co_return v;
}

asio::awaitable<bool> LoopEngine::BackOff(ActiveRun& active, const IterationRow& done)
{
    const int64_t id = done.run_id;
    std::optional<RunRow> run = store_.GetRun(id);
    if (!run || run->status != RunStatus::kRunning) co_return false;
    Millis wait{0};
    const bool limited = done.outcome == OutcomeName::kRateLimited;
    if (limited) {
        const RunSettings settings = SettingsNow(*run);
        const RunStore::RateLimited streak = store_.RateLimitedIterations(id);
        const Millis for_how_long(NowMillis() - streak.since);
        if (for_how_long >= settings.rate_limit_give_up) {
            Finish(id, RunStatus::kFailed, RunReason::kProviderUnavailable,
                   "nothing but rate-limited iterations for " + FormatDuration(Millis(for_how_long.count() / 1000 * 1000)) +
                       " (run.rate_limit_give_up " + FormatDuration(settings.rate_limit_give_up) + "); the last: " + done.error);
            co_return true;
        }
        wait = std::min<Millis>(std::chrono::minutes(1) * (int64_t(1) << std::min(streak.streak - 1, 10)),
                                settings.rate_limit_backoff_max);
    } else if (done.outcome == OutcomeName::kError || done.outcome == OutcomeName::kTimeout) {
        wait = std::min<Millis>(std::chrono::seconds(5) * (int64_t(1) << std::min(run->consecutive_failures - 1, 10)),
                                std::chrono::minutes(2));
    }
    if (wait <= Millis(0)) co_return false;
    const int64_t until = NowMillis() + wait.count();
    if (limited) {
        store_.SetWaitingUntil(id, until);
        Event(id, done.n, "note",
              Obj("message", "the provider's rate limit: waiting " + FormatDuration(wait) + " (until " +
                                 FormatLocalTime(until, "%H:%M:%S") + ") before the next iteration",
                  "waiting_until", until));
    } else {
        Event(id, done.n, "note", Obj("message", "waiting " + FormatDuration(wait) + " before the next iteration"));
    }
    const auto deadline = clock_.Now() + wait;
    while (clock_.Now() < deadline && !shutting_down_) {
        std::optional<RunRow> now = store_.GetRun(id);
        if (!now || now->status != RunStatus::kRunning || !now->stop_requested.empty() || !now->pause_requested.empty()) break;
        co_await active.wake.WaitUntil(deadline);
    }
    if (limited) {
        store_.SetWaitingUntil(id, 0);
        activity_.Notify(id);
    }
    co_return false;
}

bool LoopEngine::Settle(ActiveRun& active, const RunRow& run)
{
    const IterationRow& done = *active.unsettled;
    const int64_t id = run.id;
    if (!active.unsettled_recorded) {
        json::object end = Obj("outcome", Name(done.outcome), "promise", done.promise_seen, "tokens_in", done.tokens_in,
                               "tokens_out", done.tokens_out, "cost", done.cost);
        if (done.tokens_reasoning) end["tokens_reasoning"] = done.tokens_reasoning;
        if (!done.error.empty()) end["error"] = done.error;
        if (!done.checkpoint.empty()) {
            end["checkpoint"] = done.checkpoint;
            end["files_changed"] = done.files_changed;
            end["insertions"] = done.insertions;
            end["deletions"] = done.deletions;
            end["commits"] = done.commits;
            end["checkpoint_ms"] = done.checkpoint_ms;
        }
        if (!done.verify.empty()) {
            end["verify"] = done.verify;
            end["verify_exit"] = done.verify_exit ? json::value(*done.verify_exit) : json::value(nullptr);
        }
        const RunStore::BoundaryEvent end_event{"iteration.end", json::serialize(end), NowMillis()};
        store_.FinishIteration(done, &end_event);  // the row and its event: one commit
        activity_.Notify(id);
        if (done.outcome == OutcomeName::kError || done.outcome == OutcomeName::kTimeout) {
            AppendToFile(run.work_task_dir() + "/progress.txt",
                         "\n## ralph: iteration " + std::to_string(done.n) + " of run " + std::to_string(id) + " failed (" +
                             std::string(Name(done.outcome)) + ")\n" + done.error + "\n");
        }
        active.unsettled_recorded = true;
        ++iterations_since_restart_;
        if (max_memory_ > 0 && server_.memory() > max_memory_) {
            // Decided here, at the boundary, so that no next iteration starts before the server
            // watch has restarted the server (or found a reason not to).
            draining_ = true;
            watch_wake_.Notify();
        }
        IterationEndHooks(run, done);
    }
    // Decide.
    bool ended = true;
    if (shutting_down_ && done.outcome == OutcomeName::kInterrupted) {
        // left running, to resume on the next start
    } else if (done.outcome == OutcomeName::kComplete) {
        Finish(id, RunStatus::kCompleted, RunReason::kPromise);
    } else if (auto after = store_.GetRun(id); after && after->status == RunStatus::kRunning) {
        std::string crossed = BudgetCrossed(after->budget, Spent(*after));
        if (crossed.empty()) crossed = active.budget_crossed;  // by the steps the iteration saw
        // Work that is done wins over a budget crossed by the same iteration: the loop's top completes it.
        const bool prd_done = done.verify == "passed" ||
                              (after->verify.empty() && ReadPrd(after->work_task_dir() + "/prd.json").complete());
        if (after->consecutive_failures >= after->max_consecutive_failures) {
            Finish(id, RunStatus::kFailed, RunReason::kConsecutiveFailures,
                   std::to_string(after->consecutive_failures) + " iterations failed in a row; the last: " + done.error);
        } else if (!crossed.empty() && !prd_done) {
            Finish(id, RunStatus::kStopped, RunReason::kBudget, crossed);
        } else if (done.n < after->max_iterations && !prd_done && NoProgress(*after, done)) {
            // At the iteration limit, max_iterations is the reason (SPEC §8): the loop's top says so.
            Finish(id, RunStatus::kStopped, RunReason::kNoProgress,
                   std::to_string(after->max_idle_iterations) + " iterations in a row changed nothing");
        } else {
            // prd.json, re-read (the agent may have completed the stories or broken the file) and
            // stop requests are checked at the top of the loop, as is the iteration limit.
            ended = false;
        }
    }
    active.budget_crossed.clear();
    active.unsettled.reset();
    return ended;
}

}  // namespace ralph
