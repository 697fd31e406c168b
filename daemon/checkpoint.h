// Git checkpoints (SPEC §9): snapshots of a run's work tree as commits on refs/ralph/runs/<run-id>,
// made through git's plumbing with a private index, so that the user's HEAD, branch, index, stash
// and files never change. Snapshot 0 (the run's base) holds the user's uncommitted edits; one more
// at the end of every iteration, each the parent of the next. git itself does the work: ralph
// only runs the `git` binary (asynchronously, through the daemon's one process launcher).
#pragma once

#include "common/duration.h"
#include "common/status.h"
#include "daemon/child_command.h"
#include "daemon/process.h"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ralph {

/// Runs `git` without prompts, pager, hooks' terminal or the daemon's own GIT_* variables, with
/// literal pathspecs. A command that exits non-zero is a failure carrying git's message.
class GitRunner {
public:
    GitRunner(ProcessLauncher& launcher, std::string git_program, Millis timeout = std::chrono::minutes(5));
    /// `git args...` in `dir`, with `env` added ("KEY=VALUE") and `stdin_path` as its stdin (empty:
    /// none).
    boost::asio::awaitable<Result<std::string>> Run(const std::string& dir, std::vector<std::string> args,
                                                    std::vector<std::string> env = {}, std::string stdin_path = {});
    /// The same, but the exit code is the caller's to judge.
    boost::asio::awaitable<Result<CommandOutput>> RunChecked(const std::string& dir, std::vector<std::string> args,
                                                             std::vector<std::string> env = {},
                                                             std::string stdin_path = {});
    /// The launcher it runs git on (the one reaper of ralphd's children), lent to verify.
    ProcessLauncher& launcher() { return launcher_; }

private:
    ProcessLauncher& launcher_;
    std::string program_;
    Millis timeout_;
    std::vector<std::string> base_env_;
};

/// A git command line. Built in a plain function: GCC 12 miscompiles a braced list of string
/// literals inside a co_await expression ("array used as initializer").
template <typename... Ts>
std::vector<std::string> GitArgs(const Ts&... a)
{
    return std::vector<std::string>{std::string(a)...};
}
/// The first line of git's output, without surrounding blanks.
std::string FirstLine(const std::string& s);

/// The git work tree a run works in, found when it starts.
struct CheckpointRepo {
    std::string top;      ///< the work tree's top level
    std::string git_dir;  ///< absolute (a linked worktree's own)
    std::string index;    ///< the run's private index file
    std::string author_name, author_email;  ///< the user's identity, else ralph's
};

/// What one snapshot recorded.
struct Checkpoint {
    std::string commit;
    int files_changed{0}, insertions{0}, deletions{0};  ///< against the previous snapshot
    int commits{0};                      ///< commits the agent made (HEAD before -> after)
    std::string head;                    ///< HEAD as the snapshot found it ("" with no commit)
    std::vector<std::string> left_out;   ///< files above checkpoint_max_file, not captured
};

/// The fields of git's `-z` output, each ended by a NUL (a last one without it counts too).
std::vector<std::string_view> SplitNul(std::string_view out);

/// One line of `git diff-tree --numstat -z` (or `diff --numstat -z`), with renames.
struct NumstatEntry {
    std::string path, old_path;  ///< old_path empty unless renamed
    bool binary{false};
    int insertions{0}, deletions{0};
};
/// Parses `--numstat -z` output; entries it cannot read are skipped.
std::vector<NumstatEntry> ParseNumstat(std::string_view out);
/// The paths of `git diff-files -z --name-only` and `git ls-files -z -o --exclude-standard`
/// (modified, deleted and untracked files that are not ignored: what a snapshot must add), each
/// once, as `update-index` takes them: an untracked nested repository ("sub/") without its slash.
std::vector<std::string> ParseChangedPaths(std::string_view out);

/// One file of a diff between two snapshots (SPEC §9, `ralph diff --json`).
struct DiffFile {
    std::string path, old_path;  ///< old_path empty unless renamed
    std::string status;          ///< added, modified, deleted, renamed
    bool binary{false};
    int insertions{0}, deletions{0};
};
struct SnapshotDiff {
    std::vector<DiffFile> files;
    std::string patch;  ///< git's unified diff; empty when not asked for
};
/// The changes from commit `from` to `to` in the repository at `top`, renames found.
boost::asio::awaitable<Result<SnapshotDiff>> DiffSnapshots(GitRunner& git, const std::string& top,
                                                          const std::string& from, const std::string& to,
                                                          bool with_patch);
/// Puts the work tree of `repo` back to snapshot `target` (ignored files untouched; HEAD, branch
/// and index unmoved), after saving the current work tree as refs/ralph/backup/<unix-ms>, which it
/// returns.
boost::asio::awaitable<Result<std::string>> RestoreSnapshot(GitRunner& git, const CheckpointRepo& repo,
                                                            const std::string& target);

class Checkpoints {
public:
    /// `max_file`: bytes; larger files are left out of snapshots (0 = no limit).
    Checkpoints(GitRunner& git, int64_t max_file) : git_(git), max_file_(max_file) {}

    /// The git work tree holding `dir`; nullopt outside git (or when git is missing).
    boost::asio::awaitable<std::optional<CheckpointRepo>> Open(const std::string& dir, int64_t run_id);
    /// HEAD's commit; empty in a repository without commits.
    boost::asio::awaitable<Result<std::string>> Head(const CheckpointRepo& repo);
    /// Snapshot 0: the work tree now, parent HEAD (none without commits), on a new
    /// refs/ralph/runs/<run-id>; an existing ref of that name moves to refs/ralph/orphaned/.
    boost::asio::awaitable<Result<Checkpoint>> TakeBase(const CheckpointRepo& repo, int64_t run_id);
    /// The next snapshot: parent the ref's current commit; stats against it; `head_before`
    /// (HEAD when the iteration began) counts the agent's own commits.
    /// `parent`: the ref's commit as last seen (saves asking git; "" to ask).
    boost::asio::awaitable<Result<Checkpoint>> Take(const CheckpointRepo& repo, int64_t run_id, int iteration,
                                                    const std::string& head_before, std::string parent = "");
    /// A snapshot of the work tree now, as a commit whose parent is HEAD, on no ref.
    boost::asio::awaitable<Result<Checkpoint>> Snapshot(const CheckpointRepo& repo, const std::string& message);
    /// Commits snapshot `snapshot`'s tree on the branch checked out in `repo` (a run's own
    /// worktree), after the agent's own commits; its index follows. Nothing when the tree is the
    /// branch's already. Same identity, no hooks, no signing.
    boost::asio::awaitable<Status> CommitOnBranch(const CheckpointRepo& repo, const std::string& branch,
                                                  const std::string& snapshot, const std::string& message);
    /// Deletes the run's private index (when the run has ended).
    static void Forget(const CheckpointRepo& repo);

    static std::string RunRef(int64_t run_id) { return "refs/ralph/runs/" + std::to_string(run_id); }
    int64_t max_file() const { return max_file_; }

private:
    /// The private index brought up to the work tree; returns the tree and what was left out.
    boost::asio::awaitable<Result<std::string>> WriteTree(const CheckpointRepo& repo, std::vector<std::string>& left_out);
    /// Take's parts: the commit and its ref; what changed from `from` to `to`; the agent's commits.
    boost::asio::awaitable<Status> Publish(const CheckpointRepo& repo, int64_t run_id, int iteration, std::string tree,
                                           std::string parent, Checkpoint* cp);
    boost::asio::awaitable<Status> CountChanges(const CheckpointRepo& repo, std::string from, std::string to,
                                                Checkpoint* cp);
    boost::asio::awaitable<Status> CountCommits(const CheckpointRepo& repo, std::string head_before, Checkpoint* cp);
    boost::asio::awaitable<Result<std::string>> CommitTree(const CheckpointRepo& repo, const std::string& tree,
                                                           const std::string& parent, const std::string& message);
    std::vector<std::string> IdentityEnv(const CheckpointRepo& repo) const;

    /// What a private index held when its tree was last written, and the last snapshot of that
    /// tree: an iteration that changed nothing then needs neither write-tree nor a count of its
    /// changes. Valid while the index file is the very one stat'ed then.
    struct IndexMemo {
        uint64_t ino{0};
        int64_t mtime_ns{0};
        int64_t size{0};
        std::string tree;
        std::string commit;
    };
    const IndexMemo* Memo(const std::string& index) const;
    void RememberTree(const std::string& index, const std::string& tree);

    GitRunner& git_;
    int64_t max_file_;
    std::map<std::string, IndexMemo> memos_;  ///< by index path
};

}  // namespace ralph
