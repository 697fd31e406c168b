// LoopEngine's git checkpoints (SPEC §9): when a loop takes its snapshots, and `no_progress`
// (§8). The snapshots themselves are daemon/checkpoint.*. A snapshot that fails is said in the
// run's log and never fails the run.
#include "daemon/loop_active_run.h"

#include "common/log.h"
#include "daemon/task.h"

namespace ralph {

namespace asio = boost::asio;

namespace {

std::string Short(const std::string& commit) { return commit.substr(0, 12); }

std::string LeftOutNote(const std::vector<std::string>& left_out, int64_t max_file)
{
    std::string names;
    for (std::size_t i = 0; i < left_out.size() && i < 10; ++i) names += (i ? ", " : "") + left_out[i];
    if (left_out.size() > 10) names += " and " + std::to_string(left_out.size() - 10) + " more";
    return "checkpoint: left out " + std::to_string(left_out.size()) + " file(s) larger than run.checkpoint_max_file (" +
           std::to_string(max_file) + " bytes): " + names;
}

}  // namespace

asio::awaitable<void> LoopEngine::PrepareCheckpoints(ActiveRun& active, const RunRow& run)
{
    active.checkpoints_prepared = true;
    if (run.iteration > 0 && run.base.empty()) co_return;  // a run from before checkpoints, or outside git
    // The task's own ralph.ini may set checkpoint_max_file; read again for a resumed run.
    int64_t max_file = run_defaults_.checkpoint_max_file;
    try {
        max_file = TaskRunSettings(run_defaults_, Task{run.task_name, run.task_dir, run.project_root}).checkpoint_max_file;
    } catch (const std::exception&) {
        // a broken ralph.ini is the loop's to report; the defaults serve here
    }
    active.checkpoints = std::make_unique<Checkpoints>(git_, max_file);
    active.repo = co_await active.checkpoints->Open(run.project_root, run.id);
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
        Event(run.id, 0, "note",
              {{"message", "checkpoint: base " + Short(base->commit) + " on " + Checkpoints::RunRef(run.id)}});
        if (!base->left_out.empty()) Event(run.id, 0, "note", {{"message", LeftOutNote(base->left_out, max_file)}});
        co_return;
    }
    // A killed ralphd may have left the last iteration without its snapshot: take it now.
    std::vector<IterationRow> iterations = store_.Iterations(run.id);
    if (!iterations.empty() && iterations.back().checkpoint.empty() && !iterations.back().outcome.empty()) {
        IterationRow last = iterations.back();
        active.head_before.clear();
        Result<Checkpoint> cp = co_await active.checkpoints->Take(*active.repo, run.id, last.n, "");
        if (cp) {
            last.checkpoint = cp->commit;
            last.files_changed = cp->files_changed;
            last.insertions = cp->insertions;
            last.deletions = cp->deletions;
            store_.SetIterationCheckpoint(last);
        }
    }
}

asio::awaitable<void> LoopEngine::BeforeIteration(ActiveRun& active)
{
    active.head_before.clear();
    if (!active.repo) co_return;
    Result<std::string> head = co_await active.checkpoints->Head(*active.repo);
    if (head) active.head_before = *head;
}

asio::awaitable<void> LoopEngine::CheckpointIteration(ActiveRun& active, IterationRow& done)
{
    if (!active.repo) co_return;
    Result<Checkpoint> cp = co_await active.checkpoints->Take(*active.repo, done.run_id, done.n, active.head_before);
    if (!cp) {
        Event(done.run_id, done.n, "note", {{"message", "checkpoint failed: " + cp.status().message()}});
        co_return;
    }
    done.checkpoint = cp->commit;
    done.files_changed = cp->files_changed;
    done.insertions = cp->insertions;
    done.deletions = cp->deletions;
    done.commits = cp->commits;
    if (!cp->left_out.empty())
        Event(done.run_id, done.n, "note", {{"message", LeftOutNote(cp->left_out, run_defaults_.checkpoint_max_file)}});
}

bool LoopEngine::NoProgress(const RunRow& run, const IterationRow& done)
{
    const int k = run.max_idle_iterations;
    if (k <= 0 || run.base.empty() || done.n < k) return false;
    auto idle = [](const IterationRow& it) {
        return it.outcome == "continue" && !it.checkpoint.empty() && it.files_changed == 0 && it.commits == 0;
    };
    if (!idle(done)) return false;
    std::vector<IterationRow> iterations = store_.Iterations(run.id);
    int streak = 0;
    for (auto it = iterations.rbegin(); it != iterations.rend() && idle(*it); ++it) ++streak;
    return streak >= k;
}

}  // namespace ralph
