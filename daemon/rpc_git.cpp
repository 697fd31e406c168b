// run.diff and run.restore (SPEC §9, §12): what a run's iterations changed, from its checkpoints,
// and putting its work tree back to one of them.
#include "daemon/checkpoint.h"
#include "daemon/daemon.h"
#include "daemon/rpc_table.h"
#include "daemon/run_states.h"
#include "daemon/run_view.h"

#include <filesystem>
#include <set>

namespace ralph {

namespace {

/// The commits of a run's snapshots: [0] the base, [n] iteration n's ("" when it has none).
std::vector<std::string> Snapshots(Daemon& d, const RunRow& run)
{
    if (run.base.empty())
        throw RpcError(kInvalidState, "run " + std::to_string(run.id) +
                                          " has no checkpoints: its project is not in a git work tree, or the run is "
                                          "older than checkpoints");
    std::vector<std::string> commits = {run.base};
    for (const IterationRow& it : d.store().Iterations(run.id)) {
        commits.resize(static_cast<std::size_t>(it.n) + 1);
        commits[static_cast<std::size_t>(it.n)] = it.checkpoint;
    }
    return commits;
}

/// The snapshot `n` (from `lowest` up) of a run, checked.
const std::string& SnapshotAt(const RunRow& run, const std::vector<std::string>& commits, int64_t n, int64_t lowest)
{
    const int64_t last = static_cast<int64_t>(commits.size()) - 1;
    if (n < lowest || n > last)
        throw RpcError(kInvalidParams, "run " + std::to_string(run.id) + " has snapshots " + std::to_string(lowest) +
                                           " to " + std::to_string(last) + "; there is no iteration " + std::to_string(n));
    if (commits[static_cast<std::size_t>(n)].empty())
        throw RpcError(kInvalidState, "iteration " + std::to_string(n) + " of run " + std::to_string(run.id) +
                                          " has no checkpoint (it failed; the run's log says why)");
    return commits[static_cast<std::size_t>(n)];
}

json::object FileJson(const DiffFile& f)
{
    return {{"path", f.path},
            {"old_path", f.old_path.empty() ? json::value(nullptr) : json::value(f.old_path)},
            {"status", f.status},
            {"binary", f.binary},
            {"insertions", f.insertions},
            {"deletions", f.deletions}};
}

asio::awaitable<json::value> Diff(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    RunRow run = ValueOrThrow(ResolveRun(d.store(), params.at("run"), ParamString(params, "cwd")));
    std::vector<std::string> commits = Snapshots(d, run);
    auto iteration = ParamInt(params, "iteration");
    std::string from, to;
    if (iteration) {
        to = SnapshotAt(run, commits, *iteration, 1);
        from = SnapshotAt(run, commits, *iteration - 1, 0);
    } else {
        from = commits[0];
        to = from;
        for (const std::string& c : commits)
            if (!c.empty()) to = c;  // the last snapshot taken
    }
    const bool stat = ParamBool(params, "stat");
    Result<SnapshotDiff> diff = co_await DiffSnapshots(d.git(), run.work_root(), from, to, !stat);
    ThrowIfError(diff.status());
    json::array files;
    for (const DiffFile& f : diff->files) files.push_back(FileJson(f));
    co_return json::object{{"run", run.id},
                           {"iteration", iteration ? json::value(*iteration) : json::value(nullptr)},
                           {"from", from},
                           {"to", to},
                           {"files", std::move(files)},
                           {"patch", stat ? json::value(nullptr) : json::value(diff->patch)}};
}

asio::awaitable<json::value> Restore(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    RunRow run = ValueOrThrow(ResolveRun(d.store(), params.at("run"), ParamString(params, "cwd")));
    std::vector<std::string> commits = Snapshots(d, run);
    const int64_t n = ParamInt(params, "iteration").value_or(0);
    const std::string target = SnapshotAt(run, commits, n, 0);
    // Never under a loop's feet: not while this run, or another in the same tree, is active.
    for (const RunRow& active : d.store().ActiveRuns()) {
        if (active.id == run.id || active.work_root() == run.work_root())
            throw RpcError(kInvalidState, "run " + std::to_string(active.id) + " (" + active.task_name +
                                              ") is active in " + run.work_root() + "; stop it first: ralph stop " +
                                              std::to_string(active.id));
    }
    Checkpoints checkpoints(d.git(), 0);
    std::optional<CheckpointRepo> repo = co_await checkpoints.Open(run.work_root(), run.id);
    if (!repo) throw RpcError(kInvalidState, run.work_root() + " is no longer a git work tree");
    Result<std::string> backup = co_await RestoreSnapshot(d.git(), *repo, target);
    ThrowIfError(backup.status());
    co_return json::object{{"run", run.id}, {"iteration", n}, {"restored_to", target}, {"backup_ref", *backup}};
}

/// Paths that only the run's worktree holds: neither its branch (HEAD) nor its last snapshot has
/// them as they are; untracked and ignored ones included (an untracked directory as "dir/").
asio::awaitable<std::vector<std::string>> OnlyInWorktree(GitRunner& git, const RunRow& run, const std::string& last)
{
    std::vector<std::string> only;
    const std::string& wt = run.worktree;
    Result<std::string> untracked = co_await git.Run(wt, GitArgs("ls-files", "-o", "--directory", "-z"));
    Result<std::string> in_last = co_await git.Run(wt, GitArgs("ls-tree", "-r", "--name-only", "-z", last));
    Result<std::string> in_head = co_await git.Run(wt, GitArgs("ls-tree", "-r", "--name-only", "-z", "HEAD"));
    Result<std::string> differs_last = co_await git.Run(wt, GitArgs("diff", "--name-only", "-z", last));
    Result<std::string> differs_head = co_await git.Run(wt, GitArgs("diff", "--name-only", "-z", "HEAD"));
    ThrowIfError(untracked.status());
    ThrowIfError(in_last.status());
    ThrowIfError(in_head.status());
    ThrowIfError(differs_last.status());
    ThrowIfError(differs_head.status());
    auto split = [](const std::string& out) {
        std::set<std::string> names;
        for (std::string_view name : SplitNul(out)) names.emplace(name);
        return names;
    };
    std::set<std::string> known = split(*in_last), head = split(*in_head);
    known.insert(head.begin(), head.end());
    const std::set<std::string> untracked_paths = split(*untracked), since_head = split(*differs_head),
                                since_last = split(*differs_last);
    for (const std::string& path : untracked_paths)
        if (!known.count(path)) only.push_back(path);
    for (const std::string& path : since_last)
        if (since_head.count(path)) only.push_back(path);
    co_return only;
}

asio::awaitable<json::value> Clean(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    const bool finished = ParamBool(params, "finished"), checkpoints = ParamBool(params, "checkpoints"),
               force = ParamBool(params, "force");
    const json::value* ref = params.if_contains("run");
    if ((ref && !ref->is_null()) == finished)
        throw RpcError(kInvalidParams, "invalid params: give either 'run' or 'finished'");
    std::vector<RunRow> runs;
    if (finished) {
        for (const RunRow& r : d.store().ListRuns("", 0))
            if (!IsActive(r.status)) runs.push_back(r);
    } else {
        RunRow run = ValueOrThrow(ResolveRun(d.store(), *ref, ParamString(params, "cwd")));
        if (IsActive(run.status))
            throw RpcError(kInvalidState, "run " + std::to_string(run.id) + " is " + std::string(Name(run.status)) +
                                              "; stop it first: ralph stop " + std::to_string(run.id));
        if (run.worktree.empty() && !checkpoints)
            throw RpcError(kInvalidState, "run " + std::to_string(run.id) +
                                              " has no worktree (it worked in " + run.project_root +
                                              "); --checkpoints deletes its snapshots");
        runs.push_back(run);
    }
    json::array cleaned;
    for (const RunRow& run : runs) {
        // A project deleted since holds nothing to clean (and git could not be asked about it).
        if (!std::filesystem::is_directory(run.project_root)) continue;
        const bool has_worktree = !run.worktree.empty() && std::filesystem::is_directory(run.worktree);
        bool did = false;
        if (has_worktree) {
            std::string last = run.base;
            for (const IterationRow& it : d.store().Iterations(run.id))
                if (!it.checkpoint.empty()) last = it.checkpoint;
            if (last.empty()) last = "HEAD";
            if (!force) {
                // (No conditional expression inside co_await: GCC 12 destroys its temporary twice.)
                std::vector<std::string> only = co_await OnlyInWorktree(d.git(), run, last);
                if (!only.empty()) {
                    std::string names;
                    for (std::size_t i = 0; i < only.size() && i < 20; ++i) names += (i ? ", " : "") + only[i];
                    if (only.size() > 20) names += " and " + std::to_string(only.size() - 20) + " more";
                    throw RpcError(kInvalidState, "the worktree " + run.worktree + " of run " + std::to_string(run.id) +
                                                      " holds files that neither its branch " + run.branch +
                                                      " nor its last snapshot has: " + names +
                                                      "; commit them there, or --force to lose them");
                }
            }
            Result<std::string> removed =
                co_await d.git().Run(run.project_root, GitArgs("worktree", "remove", "--force", run.worktree));
            ThrowIfError(removed.status());
            did = true;
        }
        if (checkpoints && !run.base.empty()) {
            const std::string ref_name = Checkpoints::RunRef(run.id);
            Result<CommandOutput> exists =
                co_await d.git().RunChecked(run.project_root, GitArgs("rev-parse", "-q", "--verify", ref_name));
            if (exists && exists->ok()) {
                Result<std::string> deleted = co_await d.git().Run(run.project_root, GitArgs("update-ref", "-d", ref_name));
                ThrowIfError(deleted.status());
                did = true;
            }
        }
        if (did)
            cleaned.push_back(json::object{{"run", run.id},
                                           {"worktree", has_worktree ? json::value(run.worktree) : json::value(nullptr)},
                                           {"branch", run.branch.empty() ? json::value(nullptr) : json::value(run.branch)}});
    }
    co_return json::object{{"cleaned", std::move(cleaned)}};
}

}  // namespace

const std::vector<RpcMethod>& GitMethods()
{
    static const std::vector<RpcMethod> methods = {
        {{"run.diff", "What a run changed, from its git checkpoints: the whole run or one iteration.",
          {{"run", ParamType::StringOrInteger, true, "", "run id or task reference"},
           {"iteration", ParamType::Integer, false, "", "only this iteration (snapshot N-1 to N); absent: the whole run"},
           {"stat", ParamType::Boolean, false, "false", "the files only, no patch"},
           {"cwd", ParamType::String, false, "", "resolves a task reference"}},
          "`{run, iteration (null for the whole run), from, to, files: [{path, old_path, status (added, modified, "
          "deleted, renamed), binary, insertions, deletions}], patch (git's unified diff; null with stat)}`. "
          "-32006 for a run without checkpoints (outside git) or an iteration without one; -32602 for an "
          "iteration the run does not have"},
         Diff},
        {{"run.restore", "Puts a run's work tree back to one of its snapshots (default 0: as before the run), "
                         "first saving the work tree on refs/ralph/backup/<unix-ms>.",
          {{"run", ParamType::StringOrInteger, true, "", "run id or task reference"},
           {"iteration", ParamType::Integer, false, "0", "the snapshot: 0 the base, N after iteration N"},
           {"cwd", ParamType::String, false, "", "resolves a task reference"}},
          "`{run, iteration, restored_to, backup_ref}`; ignored files are never touched and HEAD, the branch and the "
          "index do not move. -32006 while the run or another run in the same tree is active"},
         Restore},
        {{"run.clean", "Removes an ended run's worktree (its branch stays), or every ended run's; with "
                       "`checkpoints` also its refs/ralph/runs/<id>.",
          {{"run", ParamType::StringOrInteger, false, "", "run id or task reference"},
           {"finished", ParamType::Boolean, false, "false", "every ended run instead of one"},
           {"checkpoints", ParamType::Boolean, false, "false", "also delete the runs' checkpoint refs"},
           {"force", ParamType::Boolean, false, "false", "remove a worktree even when it holds files nothing else has"},
           {"cwd", ParamType::String, false, "", "resolves a task reference"}},
          "`{cleaned: [{run, worktree, branch}]}` (what was removed; the branch is kept). -32006 for an active run, "
          "a run without worktree (without `checkpoints`), or a worktree holding files that neither its branch nor "
          "its last snapshot has (named; `force` removes it anyway)"},
         Clean},
    };
    return methods;
}

}  // namespace ralph
