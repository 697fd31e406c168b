// LoopEngine's git checkpoints (SPEC §9): when a loop takes its snapshots, and `no_progress`
// (§8). The snapshots themselves are daemon/checkpoint.*. A snapshot that fails is said in the
// run's log and never fails the run.
#include "daemon/loop_active_run.h"

#include "common/log.h"
#include "common/paths.h"
#include "daemon/task.h"

#include <cctype>
#include <filesystem>

namespace ralph {

namespace asio = boost::asio;

namespace {

/// ralph/<task>-<run-id>, with what a branch name cannot hold turned into '-'.
std::string BranchName(const RunRow& run)
{
    std::string name;
    for (char c : run.task_name)
        name += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '-';
    if (name.empty()) name = "task";
    return "ralph/" + name + "-" + std::to_string(run.id);
}

/// Does another active run work in `run`'s tree in place, or will it (an older one still deciding)?
bool TreeTaken(RunStore& store, const RunRow& run)
{
    // A queued run has not chosen yet: it chooses when it starts (SPEC §8).
    for (const RunRow& other : store.ActiveRuns())
        if (other.id != run.id && other.status != RunStatus::kQueued && other.project_root == run.project_root &&
            other.worktree.empty() && (other.id < run.id || other.iteration > 0 || !other.base.empty()))
            return true;
    return false;
}

std::string LeftOutNote(const std::vector<std::string>& left_out, int64_t max_file)
{
    std::string names;
    for (std::size_t i = 0; i < left_out.size() && i < 10; ++i) names += (i ? ", " : "") + left_out[i];
    if (left_out.size() > 10) names += " and " + std::to_string(left_out.size() - 10) + " more";
    return "checkpoint: left out " + std::to_string(left_out.size()) + " file(s) larger than run.checkpoint_max_file (" +
           std::to_string(max_file) + " bytes): " + names;
}

/// What a snapshot recorded, into its iteration's row.
void Record(const Checkpoint& cp, IterationRow& it)
{
    it.checkpoint = cp.commit;
    it.files_changed = cp.files_changed;
    it.insertions = cp.insertions;
    it.deletions = cp.deletions;
    it.commits = cp.commits;
}

}  // namespace

asio::awaitable<bool> LoopEngine::PrepareWorktree(RunRow& run)
{
    if (run.iteration > 0 || !run.base.empty()) co_return true;  // prepared before
    // A worktree recorded but no base yet: a ralphd killed while it was made. Nothing has run in
    // it, so it is made again from scratch.
    const bool remake = !run.worktree.empty();
    if (!remake && run.worktree_mode == "never") co_return true;
    if (!remake && run.worktree_mode == "auto" && !TreeTaken(store_, run)) co_return true;
    Checkpoints probe(git_, 0);
    std::optional<CheckpointRepo> repo = co_await probe.Open(run.project_root, run.id);
    std::string head;
    if (repo) {
        Result<std::string> h = co_await probe.Head(*repo);
        if (h) head = *h;
    }
    if (!repo || head.empty()) {
        Event(run.id, 0, "note",
              {{"message", std::string(repo ? "the repository has no commit yet" : "the project is not in a git work tree") +
                               ": no worktree can be made, the run works in place"}});
        co_return true;
    }
    const std::string path = WorktreesDir() + "/" + std::filesystem::path(repo->top).filename().string() + "-" +
                             std::to_string(run.id);
    const std::string branch = BranchName(run);
    while (worktrees_being_made_.count(repo->top))
        co_await worktree_made_.WaitFor(std::chrono::seconds(1));
    worktrees_being_made_.insert(repo->top);
    struct Done {
        LoopEngine& engine;
        std::string top;
        ~Done()
        {
            engine.worktrees_being_made_.erase(top);
            engine.worktree_made_.Notify();
        }
    } done{*this, repo->top};
    if (remake) {
        // Whatever the killed attempt left: the worktree's files and record, and its new branch.
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
        (void)co_await git_.RunChecked(repo->top, GitArgs("worktree", "prune"));
        (void)co_await git_.RunChecked(repo->top, GitArgs("branch", "-D", branch));
    }
    // Recorded first, so that a run starting meanwhile does not take this one for working in place.
    store_.SetRunWorktree(run.id, path, branch);
    run.worktree = path;
    run.branch = branch;
    Status made;
    if (std::string error = MakeDirs(WorktreesDir(), 0700); !error.empty()) {
        made = Status(kInternalError, error);
    } else {
        Result<std::string> added = co_await git_.Run(
            repo->top, GitArgs("-c", "core.hooksPath=/dev/null", "worktree", "add", "-q", "-b", branch, path, head));
        made = added.status();
    }
    if (made.ok()) {
        // The task as the user has it now, committed or not (its prompt, prd.json, ralph.ini).
        std::error_code ec;
        std::filesystem::create_directories(run.work_task_dir(), ec);
        std::filesystem::copy(run.task_dir, run.work_task_dir(),
                              std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing,
                              ec);
        if (ec) made = Status(kInternalError, "cannot copy the task directory into " + run.work_task_dir() + ": " + ec.message());
    }
    if (!made.ok()) {
        store_.SetRunWorktree(run.id, "", "");  // there is none: the run's JSON must not name one
        Finish(run.id, RunStatus::kFailed, RunReason::kTaskInvalid, "cannot make a git worktree for the run: " + made.message());
        co_return false;
    }
    Event(run.id, 0, "note",
          {{"message", "working in the worktree " + path + " on branch " + branch +
                           (run.worktree_mode == "auto" ? " (another run works in " + run.project_root + ")" : "")}});
    co_return true;
}

asio::awaitable<void> LoopEngine::PrepareCheckpoints(ActiveRun& active, const RunRow& run)
{
    active.checkpoints_prepared = true;
    active.branch = run.branch;
    if (run.iteration > 0 && run.base.empty()) co_return;  // a run from before checkpoints, or outside git
    // The task's own ralph.ini may set checkpoint_max_file; read again for a resumed run.
    int64_t max_file = run_defaults_.checkpoint_max_file;
    try {
        max_file = TaskRunSettings(run_defaults_, Task{run.task_name, run.task_dir, run.project_root}).checkpoint_max_file;
    } catch (const std::exception&) {
        // a broken ralph.ini is the loop's to report; the defaults serve here
    }
    active.checkpoints = std::make_unique<Checkpoints>(git_, max_file);
    active.repo = co_await active.checkpoints->Open(run.work_root(), run.id);
    if (!active.repo) {
        Event(run.id, run.iteration, "note",
              {{"message", "not in a git work tree (or git is not installed): checkpoints, diff and restore are off "
                           "for this run"}});
        co_return;
    }
    if (run.base.empty()) {
        Result<Checkpoint> base = co_await active.checkpoints->TakeBase(*active.repo, run.id);
        if (!base) {
            Event(run.id, 0, "note", {{"message", "checkpoints are off for this run: " + base.status().message()}});
            active.repo.reset();
            co_return;
        }
        store_.SetRunBase(run.id, base->commit);
        active.last_snapshot = base->commit;  // in the run's JSON; its log only says what went wrong
        if (!base->left_out.empty()) Event(run.id, 0, "note", {{"message", LeftOutNote(base->left_out, max_file)}});
        co_return;
    }
    // A killed ralphd may have left the last iteration without its snapshot: take it now.
    std::vector<IterationRow> iterations = store_.Iterations(run.id);
    if (!iterations.empty() && iterations.back().checkpoint.empty() && iterations.back().outcome != OutcomeName::kNone) {
        IterationRow last = iterations.back();
        Result<Checkpoint> cp = co_await active.checkpoints->Take(*active.repo, run.id, last.n, "");
        if (cp) {
            Record(*cp, last);
            last.commits = 0;  // HEAD at its start is not known: the agent's commits cannot be told apart
            store_.SetIterationCheckpoint(last);
        }
    }
}

asio::awaitable<void> LoopEngine::BeforeIteration(ActiveRun& active)
{
    active.head_before.clear();
    if (!active.repo) co_return;
    std::string seen = std::exchange(active.head_after_checkpoint, "");
    if (!seen.empty() && clock_.Now() - active.head_after_checkpoint_at < std::chrono::seconds(1)) {
        active.head_before = std::move(seen);
        co_return;
    }
    Result<std::string> head = co_await active.checkpoints->Head(*active.repo);
    if (head) active.head_before = *head;
}

asio::awaitable<void> LoopEngine::CheckpointIteration(ActiveRun& active, IterationRow& done)
{
    active.head_after_checkpoint.clear();
    if (!active.repo) co_return;
    const auto started = clock_.Now();
    Result<Checkpoint> cp =
        co_await active.checkpoints->Take(*active.repo, done.run_id, done.n, active.head_before, active.last_snapshot);
    done.checkpoint_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now() - started).count();
    active.last_snapshot = cp ? cp->commit : "";
    if (!cp) {
        Event(done.run_id, done.n, "note", {{"message", "checkpoint failed: " + cp.status().message()}});
        co_return;
    }
    Record(*cp, done);
    if (active.branch.empty()) {
        active.head_after_checkpoint = cp->head;
        active.head_after_checkpoint_at = clock_.Now();
    }
    if (!active.branch.empty()) {
        Status committed = co_await active.checkpoints->CommitOnBranch(
            *active.repo, active.branch, cp->commit, "ralph: iteration " + std::to_string(done.n) + " of run " + std::to_string(done.run_id));
        if (!committed.ok())
            Event(done.run_id, done.n, "note", {{"message", "commit on " + active.branch + " failed: " + committed.message()}});
        done.checkpoint_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now() - started).count();
    }
    if (!cp->left_out.empty())
        Event(done.run_id, done.n, "note", {{"message", LeftOutNote(cp->left_out, active.checkpoints->max_file())}});
}

bool LoopEngine::NoProgress(const RunRow& run, const IterationRow& done)
{
    const int k = run.max_idle_iterations;
    if (k <= 0 || run.base.empty() || done.n < k) return false;
    auto idle = [](const IterationRow& it) {
        return it.outcome == OutcomeName::kContinue && !it.checkpoint.empty() && it.files_changed == 0 && it.commits == 0;
    };
    if (!idle(done)) return false;
    std::vector<IterationRow> iterations = store_.Iterations(run.id);
    int streak = 0;
    for (auto it = iterations.rbegin(); it != iterations.rend() && idle(*it); ++it) ++streak;
    return streak >= k;
}

}  // namespace ralph
