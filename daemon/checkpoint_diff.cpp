// What a run changed between two snapshots, and putting a work tree back to one (SPEC §9:
// `ralph diff`, `ralph restore`). git does the work; see daemon/checkpoint.h.
#include "daemon/checkpoint.h"

#include "daemon/store.h"

#include <fstream>
#include <map>
#include <unistd.h>

namespace ralph {

namespace asio = boost::asio;

namespace {

/// `--name-status -z`: "S\0path\0", or "R100\0old\0new\0" for a rename; keyed by the new path.
std::map<std::string, std::string> ParseNameStatus(std::string_view out)
{
    std::map<std::string, std::string> status;
    const std::vector<std::string_view> fields = SplitNul(out);
    for (std::size_t i = 0; i + 1 < fields.size() && !fields[i].empty(); i += 2) {
        char c = fields[i][0];
        if ((c == 'R' || c == 'C') && ++i + 1 >= fields.size()) break;  // then OLD, NEW
        status[std::string(fields[i + 1])] = c == 'A' ? "added" : c == 'D' ? "deleted" : c == 'R' ? "renamed" : "modified";
    }
    return status;
}

}  // namespace

asio::awaitable<Result<SnapshotDiff>> DiffSnapshots(GitRunner& git, const std::string& top, const std::string& from,
                                                   const std::string& to, bool with_patch)
{
    Result<std::string> numstat = co_await git.Run(top, GitArgs("diff-tree", "-r", "-M", "--numstat", "-z", from, to));
    if (!numstat) co_return numstat.status();
    Result<std::string> names = co_await git.Run(top, GitArgs("diff-tree", "-r", "-M", "--name-status", "-z", from, to));
    if (!names) co_return names.status();
    std::map<std::string, std::string> status = ParseNameStatus(*names);
    SnapshotDiff diff;
    for (NumstatEntry& e : ParseNumstat(*numstat)) {
        DiffFile f;
        f.status = status.count(e.path) ? status[e.path] : "modified";
        f.path = std::move(e.path);
        f.old_path = std::move(e.old_path);
        f.binary = e.binary;
        f.insertions = e.insertions;
        f.deletions = e.deletions;
        diff.files.push_back(std::move(f));
    }
    if (with_patch) {
        Result<std::string> patch = co_await git.Run(top, GitArgs("diff-tree", "-r", "-M", "-p", "--no-color", from, to));
        if (!patch) co_return patch.status();
        diff.patch = std::move(*patch);
    }
    co_return diff;
}

asio::awaitable<Result<std::string>> RestoreSnapshot(GitRunner& git, const CheckpointRepo& repo, const std::string& target)
{
    // 1. The work tree as it is now, kept on a backup ref, through an index of its own (made from
    //    the user's, never written back to it).
    CheckpointRepo scratch = repo;
    scratch.index = repo.git_dir + "/ralph-index-restore-" + std::to_string(getpid());
    Checkpoints::Forget(scratch);
    Checkpoints snapshots(git, 0);
    const int64_t now = NowMillis();
    Result<Checkpoint> current = co_await snapshots.Snapshot(scratch, "ralph: backup before restore to " + target);
    if (!current) {
        Checkpoints::Forget(scratch);
        co_return current.status();
    }
    const std::string backup = "refs/ralph/backup/" + std::to_string(now);
    Result<std::string> saved = co_await git.Run(repo.top, GitArgs("update-ref", "-m", "ralph: backup", backup, current->commit, ""));
    if (!saved) {
        Checkpoints::Forget(scratch);
        co_return saved.status();
    }
    // 2. Every path that differs is brought back from the target. The scratch index holds the
    //    current files, so those the target lacks are "tracked" there and `git restore` removes
    //    them; ignored files are in neither and never touched.
    Result<std::string> changed =
        co_await git.Run(repo.top, GitArgs("diff-tree", "-r", "--no-renames", "--name-only", "-z", current->commit, target));
    if (changed && !changed->empty()) {
        const std::string paths_file = scratch.index + ".paths";
        {
            std::ofstream out(paths_file, std::ios::binary | std::ios::trunc);
            out << *changed;
        }
        changed = co_await git.Run(repo.top,
                                   GitArgs("restore", "--source=" + target, "--worktree", "--pathspec-from-file=" + paths_file,
                                           "--pathspec-file-nul"),
                                   GitArgs("GIT_INDEX_FILE=" + scratch.index));
    }
    Checkpoints::Forget(scratch);
    if (!changed) co_return Status(changed.status().code(), changed.status().message() + " (the work tree before it is kept on " + backup + ")");
    co_return backup;
}

}  // namespace ralph
