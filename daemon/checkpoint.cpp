#include "daemon/checkpoint.h"

#include "common/log.h"
#include "daemon/store.h"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

extern char** environ;

namespace ralph {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

std::string Trim(std::string s)
{
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    std::size_t start = 0;
    while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
    return s.substr(start);
}

}  // namespace

GitRunner::GitRunner(ProcessLauncher& launcher, std::string git_program, Millis timeout)
    : launcher_(launcher), program_(std::move(git_program)), timeout_(timeout)
{
    // ralphd's own GIT_DIR, GIT_INDEX_FILE, ... must not steer git at a run's tree.
    for (char** e = environ; e && *e; ++e)
        if (std::string_view(*e).rfind("GIT_", 0) != 0) base_env_.emplace_back(*e);
    for (const char* e : {"GIT_TERMINAL_PROMPT=0", "GIT_LITERAL_PATHSPECS=1", "GIT_PAGER=cat", "GIT_ASKPASS=/bin/false",
                          "GIT_EDITOR=/bin/false", "LC_ALL=C"})
        base_env_.emplace_back(e);
}

asio::awaitable<Result<CommandOutput>> GitRunner::RunChecked(const std::string& dir, std::vector<std::string> args,
                                                             std::vector<std::string> env, std::string stdin_path)
{
    if (program_.empty()) co_return Status(kInternalError, "git is not installed (no git on PATH)");
    LaunchSpec spec;
    spec.program = program_;
    spec.args = std::move(args);
    spec.env = base_env_;
    spec.env.insert(spec.env.end(), env.begin(), env.end());
    spec.cwd = dir;
    spec.stdin_path = std::move(stdin_path);
    co_return co_await RunChildCommand(launcher_, std::move(spec), timeout_, std::size_t(256) << 20);
}

asio::awaitable<Result<std::string>> GitRunner::Run(const std::string& dir, std::vector<std::string> args,
                                                    std::vector<std::string> env, std::string stdin_path)
{
    const std::string what = "git " + (args.empty() ? std::string() : args[0]);
    Result<CommandOutput> r = co_await RunChecked(dir, std::move(args), std::move(env), std::move(stdin_path));
    if (!r) co_return r.status();
    if (r->timed_out) co_return Status(kInternalError, what + " in " + dir + " did not finish in time");
    if (r->exit.code != 0)
        co_return Status(kInternalError, what + " in " + dir + " failed (" + r->exit.Describe() + "): " + Trim(r->err));
    co_return std::move(r->out);
}

std::vector<std::string_view> SplitNul(std::string_view out)
{
    std::vector<std::string_view> fields;
    while (!out.empty()) {
        auto nul = out.find('\0');
        fields.push_back(out.substr(0, nul));
        out.remove_prefix(nul == std::string_view::npos ? out.size() : nul + 1);
    }
    return fields;
}

std::vector<NumstatEntry> ParseNumstat(std::string_view out)
{
    std::vector<NumstatEntry> entries;
    const std::vector<std::string_view> fields = SplitNul(out);
    for (std::size_t i = 0; i < fields.size(); ++i) {
        std::string_view record = fields[i];
        // "INS\tDEL\tPATH", or for a rename "INS\tDEL\t" followed by OLD and NEW as fields of their own.
        auto tab1 = record.find('\t');
        auto tab2 = tab1 == std::string_view::npos ? tab1 : record.find('\t', tab1 + 1);
        if (tab2 == std::string_view::npos) continue;
        NumstatEntry e;
        std::string_view ins = record.substr(0, tab1), del = record.substr(tab1 + 1, tab2 - tab1 - 1);
        e.binary = ins == "-" && del == "-";
        if (!e.binary) {
            e.insertions = std::atoi(std::string(ins).c_str());
            e.deletions = std::atoi(std::string(del).c_str());
        }
        std::string_view path = record.substr(tab2 + 1);
        if (path.empty()) {
            if (i + 2 >= fields.size()) break;
            e.old_path = fields[++i];
            e.path = fields[++i];
        } else {
            e.path = path;
        }
        entries.push_back(std::move(e));
    }
    return entries;
}

std::vector<std::string> ParseChangedPaths(std::string_view out)
{
    std::vector<std::string> paths;
    std::set<std::string_view> seen;  // a deleted file is listed as modified, once per stage
    for (std::string_view path : SplitNul(out)) {
        if (path.ends_with('/')) path.remove_suffix(1);
        if (!path.empty() && seen.insert(path).second) paths.emplace_back(path);
    }
    return paths;
}

std::string FirstLine(const std::string& s)
{
    return Trim(s.substr(0, s.find('\n')));
}

namespace {

bool CopyFile(const std::string& from, const std::string& to)
{
    std::ifstream in(from, std::ios::binary);
    if (!in) return false;
    const std::string tmp = to + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << in.rdbuf();
        if (!out.flush()) return false;
    }
    return std::rename(tmp.c_str(), to.c_str()) == 0;
}

}  // namespace

asio::awaitable<std::optional<CheckpointRepo>> Checkpoints::Open(const std::string& dir, int64_t run_id)
{
    Result<std::string> where = co_await git_.Run(dir, GitArgs("rev-parse", "--show-toplevel", "--absolute-git-dir"));
    if (!where) co_return std::nullopt;  // not a git work tree (or a bare repository, or no git)
    const std::string& out = *where;
    auto nl = out.find('\n');
    if (nl == std::string::npos) co_return std::nullopt;
    CheckpointRepo repo;
    repo.top = out.substr(0, nl);
    repo.git_dir = FirstLine(out.substr(nl + 1));
    if (repo.top.empty() || repo.git_dir.empty()) co_return std::nullopt;
    repo.index = repo.git_dir + "/ralph-index-" + std::to_string(run_id);
    // The user's identity when set (through any of git's config files), else ralph's own: a fresh
    // machine has none, and commit-tree would refuse to work without one.
    Result<CommandOutput> name = co_await git_.RunChecked(dir, GitArgs("config", "--get", "user.name"));
    Result<CommandOutput> email = co_await git_.RunChecked(dir, GitArgs("config", "--get", "user.email"));
    repo.author_name = name && name->ok() ? FirstLine(name->out) : "";
    repo.author_email = email && email->ok() ? FirstLine(email->out) : "";
    if (repo.author_name.empty()) repo.author_name = "ralph";
    if (repo.author_email.empty()) repo.author_email = "ralph@localhost";
    co_return repo;
}

asio::awaitable<Result<std::string>> Checkpoints::Head(const CheckpointRepo& repo)
{
    Result<CommandOutput> r = co_await git_.RunChecked(repo.top, GitArgs("rev-parse", "-q", "--verify", "HEAD^{commit}"));
    if (!r) co_return r.status();
    co_return r->ok() ? FirstLine(r->out) : std::string();  // no commit yet
}

std::vector<std::string> Checkpoints::IdentityEnv(const CheckpointRepo& repo) const
{
    return {"GIT_AUTHOR_NAME=" + repo.author_name, "GIT_AUTHOR_EMAIL=" + repo.author_email,
            "GIT_COMMITTER_NAME=" + repo.author_name, "GIT_COMMITTER_EMAIL=" + repo.author_email};
}

asio::awaitable<Result<std::string>> Checkpoints::WriteTree(const CheckpointRepo& repo, std::vector<std::string>& left_out)
{
    // Only this run's snapshots use this index, one at a time: a lock left by a killed ralphd is stale.
    unlink((repo.index + ".lock").c_str());
    struct stat st {};
    if (stat(repo.index.c_str(), &st) != 0) {
        // First snapshot: start from the user's index, whose stat data spares git hashing every file.
        CopyFile(repo.git_dir + "/index", repo.index);
    }
    const std::vector<std::string> env = GitArgs("GIT_INDEX_FILE=" + repo.index);
    // What differs from the index: only the work tree is looked at (`git status` would compare
    // the index with HEAD too). Stale stat data only lists a file more; `add` then refreshes it.
    // Tracked files by diff-files, which checks them on several threads (`ls-files -m` checks one
    // by one), beside the untracked ones by ls-files.
    auto [modified, untracked] = co_await (git_.Run(repo.top, GitArgs("diff-files", "-z", "--name-only"), env) &&
                                           git_.Run(repo.top, GitArgs("ls-files", "-z", "-o", "--exclude-standard"), env));
    if (!modified) co_return modified.status();
    if (!untracked) co_return untracked.status();
    std::string list;
    for (const std::string& path : ParseChangedPaths(*modified + *untracked)) {
        struct stat file {};
        if (max_file_ > 0 && lstat((repo.top + "/" + path).c_str(), &file) == 0 && S_ISREG(file.st_mode) &&
            file.st_size > max_file_) {
            left_out.push_back(path);
            continue;
        }
        list += path;
        list.push_back('\0');
    }
    if (list.empty()) {
        if (const IndexMemo* memo = Memo(repo.index)) co_return memo->tree;  // the index is as it was
    }
    memos_.erase(repo.index);
    if (!list.empty()) {
        const std::string paths_file = repo.index + ".paths";
        {
            std::ofstream out(paths_file, std::ios::binary | std::ios::trunc);
            out << list;
            if (!out.flush()) co_return Status(kInternalError, "cannot write " + paths_file);
        }
        // update-index takes exactly these paths (added, changed or gone; a file replacing a
        // directory or the reverse); `add` with them as pathspecs would walk the whole tree again.
        Result<std::string> added = co_await git_.Run(
            repo.top, GitArgs("update-index", "--add", "--remove", "--replace", "-z", "--stdin"), env, paths_file);
        unlink(paths_file.c_str());
        if (!added) co_return added.status();
    }
    Result<std::string> tree = co_await git_.Run(repo.top, GitArgs("write-tree"), env);
    if (!tree) co_return tree.status();
    RememberTree(repo.index, FirstLine(*tree));
    co_return FirstLine(*tree);
}

namespace {

struct stat StatOrZero(const std::string& path)
{
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) st = {};
    return st;
}

int64_t MtimeNs(const struct stat& st) { return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec; }

}  // namespace

const Checkpoints::IndexMemo* Checkpoints::Memo(const std::string& index) const
{
    auto it = memos_.find(index);
    if (it == memos_.end()) return nullptr;
    const struct stat st = StatOrZero(index);
    const IndexMemo& m = it->second;
    if (st.st_ino == 0 || st.st_ino != m.ino || MtimeNs(st) != m.mtime_ns || st.st_size != m.size) return nullptr;
    return &m;
}

void Checkpoints::RememberTree(const std::string& index, const std::string& tree)
{
    if (memos_.size() >= 256) {  // runs that ended: their index files are gone
        std::erase_if(memos_, [](const auto& entry) { return StatOrZero(entry.first).st_ino == 0; });
    }
    const struct stat st = StatOrZero(index);
    if (st.st_ino == 0) return;
    memos_[index] = IndexMemo{static_cast<uint64_t>(st.st_ino), MtimeNs(st), static_cast<int64_t>(st.st_size), tree, ""};
}

asio::awaitable<Result<std::string>> Checkpoints::CommitTree(const CheckpointRepo& repo, const std::string& tree,
                                                             const std::string& parent, const std::string& message)
{
    // Plumbing runs no hooks; --no-gpg-sign overrides commit.gpgSign (a prompt would hang the loop).
    std::vector<std::string> args = GitArgs("commit-tree", "--no-gpg-sign", "-m", message, tree);
    if (!parent.empty()) {
        args.push_back("-p");
        args.push_back(parent);
    }
    Result<std::string> commit = co_await git_.Run(repo.top, std::move(args), IdentityEnv(repo));
    if (!commit) co_return commit.status();
    co_return FirstLine(*commit);
}

asio::awaitable<Result<Checkpoint>> Checkpoints::Snapshot(const CheckpointRepo& repo, const std::string& message)
{
    Result<std::string> head = co_await Head(repo);
    if (!head) co_return head.status();
    Checkpoint cp;
    Result<std::string> tree = co_await WriteTree(repo, cp.left_out);
    if (!tree) co_return tree.status();
    Result<std::string> commit = co_await CommitTree(repo, *tree, *head, message);
    if (!commit) co_return commit.status();
    cp.commit = *commit;
    co_return cp;
}

asio::awaitable<Result<Checkpoint>> Checkpoints::TakeBase(const CheckpointRepo& repo, int64_t run_id)
{
    Result<Checkpoint> snapshot = co_await Snapshot(repo, "ralph: run " + std::to_string(run_id) + ", snapshot 0 (base)");
    if (!snapshot) co_return snapshot.status();
    Checkpoint cp = std::move(*snapshot);
    const std::string ref = RunRef(run_id);
    Result<CommandOutput> existing = co_await git_.RunChecked(repo.top, GitArgs("rev-parse", "-q", "--verify", ref));
    if (!existing) co_return existing.status();
    std::string old;
    if (existing->ok()) {
        // A ref of the same name from a state directory that was reset: kept, never overwritten.
        old = FirstLine(existing->out);
        const std::string orphan = "refs/ralph/orphaned/" + std::to_string(run_id) + "-" + std::to_string(NowMillis());
        Result<std::string> moved = co_await git_.Run(repo.top, GitArgs("update-ref", orphan, old, ""));
        if (!moved) co_return moved.status();
        Log(LogLevel::Warning) << "run " << run_id << ": " << ref << " existed already; kept as " << orphan;
    }
    // Compare-and-swap: the ref is created only if it is still what was seen.
    Result<std::string> set = co_await git_.Run(repo.top, GitArgs("update-ref", "-m", "ralph: base", ref, cp.commit, old));
    if (!set) co_return set.status();
    co_return cp;
}

asio::awaitable<Status> Checkpoints::Publish(const CheckpointRepo& repo, int64_t run_id, int iteration,
                                             std::string tree, std::string parent, Checkpoint* cp)
{
    Result<std::string> commit = co_await CommitTree(
        repo, tree, parent, "ralph: run " + std::to_string(run_id) + ", iteration " + std::to_string(iteration));
    if (!commit) co_return commit.status();
    cp->commit = *commit;
    Result<std::string> set = co_await git_.Run(
        repo.top, GitArgs("update-ref", "-m", "ralph: iteration " + std::to_string(iteration), RunRef(run_id), *commit, parent));
    co_return set.status();
}

asio::awaitable<Status> Checkpoints::CountChanges(const CheckpointRepo& repo, std::string from, std::string to,
                                                  Checkpoint* cp)
{
    std::vector<std::string> diff = GitArgs("diff-tree", "-r", "-M", "--numstat", "-z", "--no-commit-id");
    if (from.empty()) diff.push_back("--root");  // `to` is then a commit
    else diff.push_back(from);
    diff.push_back(to);
    Result<std::string> numstat = co_await git_.Run(repo.top, std::move(diff));
    if (!numstat) co_return numstat.status();
    for (const NumstatEntry& e : ParseNumstat(*numstat)) {
        ++cp->files_changed;
        cp->insertions += e.insertions;
        cp->deletions += e.deletions;
    }
    co_return Status::Ok();
}

asio::awaitable<Status> Checkpoints::CountCommits(const CheckpointRepo& repo, std::string head_before, Checkpoint* cp)
{
    Result<std::string> head = co_await Head(repo);
    if (!head) co_return head.status();
    cp->head = *head;
    if (head->empty() || *head == head_before) co_return Status::Ok();
    std::vector<std::string> count = GitArgs("rev-list", "--count", *head);
    if (!head_before.empty()) count.push_back("^" + head_before);
    Result<std::string> n = co_await git_.Run(repo.top, std::move(count));
    if (!n) co_return n.status();
    cp->commits = std::atoi(n->c_str());
    co_return Status::Ok();
}

asio::awaitable<Result<Checkpoint>> Checkpoints::Take(const CheckpointRepo& repo, int64_t run_id, int iteration,
                                                      const std::string& head_before, std::string parent)
{
    const bool hinted = !parent.empty();
    if (parent.empty()) {
        Result<CommandOutput> current =
            co_await git_.RunChecked(repo.top, GitArgs("rev-parse", "-q", "--verify", RunRef(run_id)));
        if (!current) co_return current.status();
        if (current->ok()) parent = FirstLine(current->out);  // else someone deleted the ref: a new root
    }
    Checkpoint cp;
    Result<std::string> tree = co_await WriteTree(repo, cp.left_out);
    if (!tree) co_return tree.status();
    // The commit and the ref, what changed and the agent's commits: independent, so side by side.
    Status published, counted, commits;
    const IndexMemo* memo = Memo(repo.index);
    if (!parent.empty() && memo && memo->commit == parent && memo->tree == *tree) {
        // The parent holds this very tree: nothing changed, nothing to count.
        std::tie(published, commits) =
            co_await (Publish(repo, run_id, iteration, *tree, parent, &cp) && CountCommits(repo, head_before, &cp));
    } else if (parent.empty()) {
        published = co_await Publish(repo, run_id, iteration, *tree, parent, &cp);
        if (published.ok()) counted = co_await CountChanges(repo, "", cp.commit, &cp);
        commits = co_await CountCommits(repo, head_before, &cp);
    } else {
        std::tie(published, counted, commits) =
            co_await (Publish(repo, run_id, iteration, *tree, parent, &cp) && CountChanges(repo, parent, *tree, &cp) &&
                      CountCommits(repo, head_before, &cp));
    }
    if (!published.ok() && hinted) {
        // The ref is not where this run last left it (a killed ralphd made one more snapshot,
        // or someone moved it): again, from where it is.
        co_return co_await Take(repo, run_id, iteration, head_before, "");
    }
    if (!published.ok()) co_return published;
    if (!counted.ok()) co_return counted;
    if (!commits.ok()) co_return commits;
    if (auto it = memos_.find(repo.index); it != memos_.end() && it->second.tree == *tree) it->second.commit = cp.commit;
    co_return cp;
}

asio::awaitable<Status> Checkpoints::CommitOnBranch(const CheckpointRepo& repo, const std::string& branch,
                                                   const std::string& snapshot, const std::string& message)
{
    Result<std::string> head = co_await Head(repo);
    if (!head) co_return head.status();
    Result<std::string> trees = co_await git_.Run(repo.top, GitArgs("rev-parse", snapshot + "^{tree}", *head + "^{tree}"));
    if (!trees) co_return trees.status();
    const std::string tree = FirstLine(*trees);
    if (FirstLine(trees->substr(trees->find('\n') + 1)) == tree) co_return Status::Ok();  // nothing new
    Result<std::string> commit = co_await CommitTree(repo, tree, *head, message);
    if (!commit) co_return commit.status();
    Result<std::string> moved =
        co_await git_.Run(repo.top, GitArgs("update-ref", "-m", message, "refs/heads/" + branch, *commit, *head));
    if (!moved) co_return moved.status();
    // The worktree's own index now matches its HEAD again (the files are what was committed).
    Result<std::string> index = co_await git_.Run(repo.top, GitArgs("read-tree", *commit));
    co_return index.status();
}

void Checkpoints::Forget(const CheckpointRepo& repo)
{
    for (const char* suffix : {"", ".lock", ".paths", ".tmp"}) unlink((repo.index + suffix).c_str());
}

}  // namespace ralph
