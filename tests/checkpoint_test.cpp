// Git checkpoints (daemon/checkpoint.*) against the real git binary: what a snapshot holds and
// leaves out, that the user's HEAD, index, stash and files never change, repositories without
// commits, machines without an identity, hooks and signing that must not run. The loop's use of
// them, through the real opencode, is in e2e_git_test.cpp.
#include "daemon/checkpoint.h"
#include "tests/harness.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/detached.hpp>
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <sys/wait.h>
#include <csignal>
#include <thread>
#include <random>

namespace ralph::test {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

TEST(UnitCheckpoint, ParsesNumstatWithRenamesAndBinaries)
{
    std::string out = std::string("3\t1\ta.txt\0", 10) + std::string("-\t-\tbin.dat\0", 12) +
                      std::string("0\t0\t\0old name.txt\0new name.txt\0", 31);
    auto entries = ParseNumstat(out);
    ASSERT_EQ(entries.size(), 3u);
    EXPECT_EQ(entries[0].path, "a.txt");
    EXPECT_EQ(entries[0].insertions, 3);
    EXPECT_EQ(entries[0].deletions, 1);
    EXPECT_TRUE(entries[1].binary);
    EXPECT_EQ(entries[1].path, "bin.dat");
    EXPECT_EQ(entries[2].old_path, "old name.txt");
    EXPECT_EQ(entries[2].path, "new name.txt");
    EXPECT_TRUE(ParseNumstat("").empty());
    EXPECT_TRUE(ParseNumstat(std::string("garbage\0", 8)).empty());
}

TEST(UnitCheckpoint, ChangedPathsAreWhatDiffersInTheWorkTree)
{
    std::string out = std::string("mod.txt\0", 8) + std::string("gone.txt\0", 9) + std::string("gone.txt\0", 9) +
                      std::string("new dir/file\0", 13) + std::string("nested repo/\0", 13);
    EXPECT_EQ(ParseChangedPaths(out),
              (std::vector<std::string>{"mod.txt", "gone.txt", "new dir/file", "nested repo"}));
    EXPECT_TRUE(ParseChangedPaths("").empty());
}

/// A repository in a private directory; git run with a private HOME (no identity unless given).
class Repo {
public:
    Repo()
    {
        home = env.dir + "/home";
        fs::create_directories(home);
        top = env.dir + "/repo";
        fs::create_directories(top);
        setenv("HOME", home.c_str(), 1);  // what the GitRunner's git sees (this test's own process)
        setenv("XDG_CONFIG_HOME", (home + "/.config").c_str(), 1);
        Git({"init", "-q"});
    }
    CommandResult Git(std::vector<std::string> args)
    {
        args.insert(args.begin(), {"/usr/bin/git", "-C", top});
        auto r = RunProgram(args, {{"HOME", home}, {"XDG_CONFIG_HOME", home + "/.config"}, {"GIT_CONFIG_NOSYSTEM", "1"}});
        EXPECT_EQ(r.exit_code, 0) << "git " << args[3] << ": " << r.err;
        return r;
    }
    std::string Out(std::vector<std::string> args) { return Git(std::move(args)).out; }
    void Commit(const std::string& message)
    {
        Git({"add", "-A"});
        Git({"-c", "user.name=u", "-c", "user.email=u@u", "commit", "-qm", message});
    }
    void Write(const std::string& path, const std::string& text)
    {
        fs::create_directories(fs::path(top + "/" + path).parent_path());
        WriteFile(top + "/" + path, text);
    }
    /// Everything about the user's state a snapshot must not change.
    std::string UserState()
    {
        return Out({"rev-parse", "-q", "--verify", "HEAD"}) + Out({"symbolic-ref", "-q", "HEAD"}) +
               Out({"ls-files", "--stage"}) + Out({"stash", "list"}) + Out({"status", "--porcelain", "--ignored"});
    }

    TestEnv env;
    std::string home, top;
};

/// Runs the checkpoint operations on an io_context of the test's own.
class Snapshots {
public:
    explicit Snapshots(int64_t max_file = 10 << 20)
        : launcher(io), git(launcher, "/usr/bin/git"), checkpoints(git, max_file)
    {
    }
    template <typename T>
    T Await(asio::awaitable<T> op)
    {
        std::optional<T> out;
        asio::co_spawn(io, Into(std::move(op), &out), asio::detached);
        // Not io.run(): the launcher's SIGCHLD wait keeps the io_context busy for good.
        io.restart();
        while (!out && io.run_one()) {
        }
        EXPECT_TRUE(out.has_value());
        return std::move(*out);
    }
    template <typename T>
    static asio::awaitable<void> Into(asio::awaitable<T> op, std::optional<T>* out)
    {
        out->emplace(co_await std::move(op));
    }
    CheckpointRepo Open(const std::string& dir, int64_t run)
    {
        auto repo = Await(checkpoints.Open(dir, run));
        EXPECT_TRUE(repo.has_value()) << dir;
        return repo.value_or(CheckpointRepo{});
    }

    asio::io_context io;
    PosixLauncher launcher;
    GitRunner git;
    Checkpoints checkpoints;
};

TEST(FunctionalCheckpoint, BaseHoldsTheUsersEditsAndAnIterationOnlyTheAgentsWork)
{
    Repo repo;
    repo.Write(".gitignore", "*.log\nbuild/\n");
    repo.Write("keep.txt", "one\ntwo\n");
    repo.Write("doomed.txt", "bye\n");
    repo.Write("move-me.txt", "a file that will be renamed\nwith some lines\nin it\n");
    repo.Commit("init");
    repo.Git({"stash", "list"});
    // The user's own state: an uncommitted edit, a staged file, an untracked file, an ignored one, a stash.
    repo.Write("stashed.txt", "stash me\n");
    repo.Git({"add", "stashed.txt"});
    repo.Git({"-c", "user.name=u", "-c", "user.email=u@u", "stash", "-q"});
    repo.Write("keep.txt", "one\ntwo\nuser edit\n");
    repo.Write("staged.txt", "staged\n");
    repo.Git({"add", "staged.txt"});
    repo.Write("user-untracked.txt", "mine\n");
    repo.Write("debug.log", "ignored\n");
    const std::string before = repo.UserState();

    Snapshots s;
    CheckpointRepo cr = s.Open(repo.top, 7);
    EXPECT_EQ(fs::canonical(cr.top), fs::canonical(repo.top));
    Result<Checkpoint> base = s.Await(s.checkpoints.TakeBase(cr, 7));
    ASSERT_TRUE(base.ok()) << base.status().message();
    EXPECT_EQ(repo.Out({"rev-parse", "refs/ralph/runs/7"}), base->commit + "\n");
    EXPECT_EQ(repo.Out({"rev-parse", "refs/ralph/runs/7^"}), repo.Out({"rev-parse", "HEAD"}));
    EXPECT_EQ(repo.Out({"show", base->commit + ":keep.txt"}), "one\ntwo\nuser edit\n");
    EXPECT_EQ(repo.Out({"ls-tree", "-r", "--name-only", base->commit}),
              ".gitignore\ndoomed.txt\nkeep.txt\nmove-me.txt\nstaged.txt\nuser-untracked.txt\n");
    EXPECT_EQ(repo.UserState(), before);

    // The agent's work: add, modify, delete, rename, a binary file, an ignored file.
    repo.Write("added.txt", "new\n");
    repo.Write("keep.txt", "one\nTWO\nuser edit\n");
    fs::remove(repo.top + "/doomed.txt");
    fs::rename(repo.top + "/move-me.txt", repo.top + "/moved.txt");
    repo.Write("image.bin", std::string("\x89PNG\0\0\x01\x02", 8));
    repo.Write("build/out.o", "ignored output\n");
    const std::string agent_state = repo.UserState();
    Result<Checkpoint> one = s.Await(s.checkpoints.Take(cr, 7, 1, repo.Out({"rev-parse", "HEAD"}).substr(0, 40)));
    ASSERT_TRUE(one.ok()) << one.status().message();
    EXPECT_EQ(repo.Out({"rev-parse", "refs/ralph/runs/7^"}), base->commit + "\n");
    EXPECT_EQ(one->files_changed, 5);
    EXPECT_EQ(one->insertions, 2);  // added.txt's line and TWO
    EXPECT_EQ(one->deletions, 2);   // two, bye
    EXPECT_EQ(one->commits, 0);
    EXPECT_EQ(repo.Out({"diff-tree", "-r", "-M", "--name-status", "--no-commit-id", base->commit, one->commit}),
              "A\tadded.txt\nD\tdoomed.txt\nA\timage.bin\nM\tkeep.txt\nR100\tmove-me.txt\tmoved.txt\n");
    EXPECT_EQ(repo.UserState(), agent_state);  // snapshots touch nothing of the user's

    // Nothing changed: an empty iteration.
    Result<Checkpoint> two = s.Await(s.checkpoints.Take(cr, 7, 2, repo.Out({"rev-parse", "HEAD"}).substr(0, 40)));
    ASSERT_TRUE(two.ok()) << two.status().message();
    EXPECT_EQ(two->files_changed, 0);
    EXPECT_EQ(repo.Out({"rev-parse", two->commit + "^{tree}"}), repo.Out({"rev-parse", one->commit + "^{tree}"}));
    EXPECT_EQ(repo.Out({"fsck", "--no-progress"}), "");
}

TEST(FunctionalCheckpoint, EveryKindOfChangeIsTheTreeGitAddWouldStage)
{
    Repo repo;
    repo.Write("file-then-dir", "a file\n");
    repo.Write("dir-then-file/inner.txt", "in a directory\n");
    repo.Write("script.sh", "echo\n");
    repo.Commit("init");
    Snapshots s;
    CheckpointRepo cr = s.Open(repo.top, 3);
    ASSERT_TRUE(s.Await(s.checkpoints.TakeBase(cr, 3)).ok());

    // A file becomes a directory and a directory a file, a mode and a symlink change, a nested repository.
    fs::remove(repo.top + "/file-then-dir");
    repo.Write("file-then-dir/now-inside.txt", "moved in\n");
    fs::remove_all(repo.top + "/dir-then-file");
    repo.Write("dir-then-file", "now a file\n");
    fs::permissions(repo.top + "/script.sh", fs::perms::owner_exec, fs::perm_options::add);
    fs::create_symlink("script.sh", repo.top + "/link");
    fs::create_directories(repo.top + "/nested");
    ASSERT_EQ(RunProgram({"/usr/bin/git", "-C", repo.top + "/nested", "init", "-q"}, {}).exit_code, 0);
    repo.Write("nested/inside.txt", "x\n");
    ASSERT_EQ(RunProgram({"/usr/bin/git", "-C", repo.top + "/nested", "-c", "user.name=u", "-c", "user.email=u@u",
                          "commit", "-qm", "n", "--allow-empty"}, {})
                  .exit_code,
              0);

    Result<Checkpoint> one = s.Await(s.checkpoints.Take(cr, 3, 1, repo.Out({"rev-parse", "HEAD"}).substr(0, 40)));
    ASSERT_TRUE(one.ok()) << one.status().message();
    // What `git add -A` makes of the same tree, in an index of the test's own.
    const std::string scratch = repo.env.dir + "/scratch-index";
    auto git_add = RunProgram({"/usr/bin/git", "-C", repo.top, "add", "-A"}, {{"GIT_INDEX_FILE", scratch}});
    ASSERT_EQ(git_add.exit_code, 0) << git_add.err;
    auto expected = RunProgram({"/usr/bin/git", "-C", repo.top, "write-tree"}, {{"GIT_INDEX_FILE", scratch}});
    ASSERT_EQ(expected.exit_code, 0) << expected.err;
    EXPECT_EQ(repo.Out({"rev-parse", one->commit + "^{tree}"}), expected.out);
    EXPECT_EQ(repo.Out({"ls-tree", "-r", "--name-only", one->commit}),
              "dir-then-file\nfile-then-dir/now-inside.txt\nlink\nnested\nscript.sh\n");
}

TEST(FunctionalCheckpoint, NoCommitsNoIdentityFailingHooksAndSigningStillSnapshot)
{
    Repo repo;  // no commit yet, and HOME has no .gitconfig
    repo.Git({"config", "commit.gpgSign", "true"});
    repo.Git({"config", "user.signingKey", "NO-SUCH-KEY"});
    repo.Write(".git/hooks/commit-msg", "#!/bin/sh\nexit 1\n");
    repo.Write(".git/hooks/pre-commit", "#!/bin/sh\nexit 1\n");
    fs::permissions(repo.top + "/.git/hooks/commit-msg", fs::perms::owner_all);
    fs::permissions(repo.top + "/.git/hooks/pre-commit", fs::perms::owner_all);
    repo.Write("a.txt", "a\n");

    Snapshots s;
    CheckpointRepo cr = s.Open(repo.top, 1);
    EXPECT_EQ(cr.author_name, "ralph");
    EXPECT_EQ(cr.author_email, "ralph@localhost");
    Result<Checkpoint> base = s.Await(s.checkpoints.TakeBase(cr, 1));
    ASSERT_TRUE(base.ok()) << base.status().message();
    EXPECT_EQ(repo.Git({"rev-list", "--count", base->commit}).out, "1\n");  // no parent: no HEAD yet
    EXPECT_EQ(repo.Out({"log", "-1", "--format=%an <%ae>", base->commit}), "ralph <ralph@localhost>\n");
    repo.Write("b.txt", "b\n");
    Result<Checkpoint> one = s.Await(s.checkpoints.Take(cr, 1, 1, ""));
    ASSERT_TRUE(one.ok()) << one.status().message();
    EXPECT_EQ(one->files_changed, 1);
    // The repository still has no commit of its own, and nothing is staged.
    EXPECT_NE(RunProgram({"/usr/bin/git", "-C", repo.top, "rev-parse", "-q", "--verify", "HEAD"}, {}).exit_code, 0);
    EXPECT_EQ(repo.Out({"ls-files", "--stage"}), "");
}

TEST(FunctionalCheckpoint, TheUsersIdentityLargeFilesAndTheAgentsOwnCommits)
{
    Repo repo;
    repo.Git({"config", "user.name", "Jo User"});
    repo.Git({"config", "user.email", "jo@example.com"});
    repo.Write("a.txt", "a\n");
    repo.Commit("init");
    Snapshots s(/*max_file=*/1000);
    CheckpointRepo cr = s.Open(repo.top, 3);
    EXPECT_EQ(cr.author_name, "Jo User");
    ASSERT_TRUE(s.Await(s.checkpoints.TakeBase(cr, 3)).ok());
    const std::string head = repo.Out({"rev-parse", "HEAD"}).substr(0, 40);
    // The agent commits twice and leaves a file too large for snapshots.
    repo.Write("b.txt", "b\n");
    repo.Commit("agent one");
    repo.Write("c.txt", "c\n");
    repo.Commit("agent two");
    repo.Write("huge.dat", std::string(5000, 'x'));
    Result<Checkpoint> one = s.Await(s.checkpoints.Take(cr, 3, 1, head));
    ASSERT_TRUE(one.ok()) << one.status().message();
    EXPECT_EQ(one->commits, 2);
    EXPECT_EQ(one->files_changed, 2);
    EXPECT_EQ(one->left_out, std::vector<std::string>{"huge.dat"});
    EXPECT_EQ(repo.Out({"log", "-1", "--format=%an <%ae>", one->commit}), "Jo User <jo@example.com>\n");
}

TEST(FunctionalCheckpoint, AnExistingRefIsKeptAsOrphanedNeverOverwritten)
{
    Repo repo;
    repo.Write("a.txt", "a\n");
    repo.Commit("init");
    const std::string head = repo.Out({"rev-parse", "HEAD"}).substr(0, 40);
    repo.Git({"update-ref", "refs/ralph/runs/5", head});
    Snapshots s;
    CheckpointRepo cr = s.Open(repo.top, 5);
    Result<Checkpoint> base = s.Await(s.checkpoints.TakeBase(cr, 5));
    ASSERT_TRUE(base.ok()) << base.status().message();
    EXPECT_EQ(repo.Out({"rev-parse", "refs/ralph/runs/5"}), base->commit + "\n");
    std::string orphans = repo.Out({"for-each-ref", "--format=%(refname) %(objectname)", "refs/ralph/orphaned/"});
    EXPECT_EQ(orphans.rfind("refs/ralph/orphaned/5-", 0), 0u) << orphans;
    EXPECT_NE(orphans.find(" " + head), std::string::npos) << orphans;
}

TEST(FunctionalCheckpoint, OutsideGitThereIsNoRepository)
{
    TestEnv env;
    fs::create_directories(env.dir + "/plain");
    Snapshots s;
    EXPECT_FALSE(s.Await(s.checkpoints.Open(env.dir + "/plain", 1)).has_value());
}

TEST(FunctionalCheckpoint, AStaleLockFromAKilledDaemonDoesNotStopTheNextSnapshot)
{
    Repo repo;
    repo.Write("a.txt", "a\n");
    repo.Commit("init");
    Snapshots s;
    CheckpointRepo cr = s.Open(repo.top, 9);
    ASSERT_TRUE(s.Await(s.checkpoints.TakeBase(cr, 9)).ok());
    WriteFile(cr.index + ".lock", "");  // as a SIGKILL in the middle of `git add` leaves it
    repo.Write("a.txt", "b\n");
    Result<Checkpoint> one = s.Await(s.checkpoints.Take(cr, 9, 1, ""));
    ASSERT_TRUE(one.ok()) << one.status().message();
    EXPECT_EQ(one->files_changed, 1);
    Checkpoints::Forget(cr);
    EXPECT_FALSE(PathExists(cr.index));
}

TEST(FunctionalCheckpoint, AnIterationThatChangedNothingIsASnapshotOfTheSameTreeAndTheNextChangeCounts)
{
    Repo repo;
    repo.Write("a.txt", "a\n");
    repo.Commit("init");
    Snapshots s;
    CheckpointRepo cr = s.Open(repo.top, 5);
    Result<Checkpoint> base = s.Await(s.checkpoints.TakeBase(cr, 5));
    ASSERT_TRUE(base.ok()) << base.status().message();
    repo.Write("a.txt", "b\n");
    Result<Checkpoint> one = s.Await(s.checkpoints.Take(cr, 5, 1, "", base->commit));
    ASSERT_TRUE(one.ok()) << one.status().message();
    EXPECT_EQ(one->files_changed, 1);
    // Nothing changed: a snapshot of its own, chained, with the same tree and nothing counted.
    Result<Checkpoint> two = s.Await(s.checkpoints.Take(cr, 5, 2, "", one->commit));
    ASSERT_TRUE(two.ok()) << two.status().message();
    EXPECT_NE(two->commit, one->commit);
    EXPECT_EQ(repo.Out({"rev-parse", two->commit + "^"}), one->commit + "\n");
    EXPECT_EQ(repo.Out({"rev-parse", two->commit + "^{tree}"}), repo.Out({"rev-parse", one->commit + "^{tree}"}));
    EXPECT_EQ(two->files_changed, 0);
    EXPECT_EQ(two->insertions + two->deletions, 0);
    // A new file after an unchanged snapshot is in the next one.
    repo.Write("b.txt", "new\n");
    Result<Checkpoint> three = s.Await(s.checkpoints.Take(cr, 5, 3, "", two->commit));
    ASSERT_TRUE(three.ok()) << three.status().message();
    EXPECT_EQ(three->files_changed, 1);
    EXPECT_EQ(repo.Out({"show", three->commit + ":b.txt"}), "new\n");
    // And a change right after an unchanged snapshot is counted against it.
    Result<Checkpoint> four = s.Await(s.checkpoints.Take(cr, 5, 4, "", three->commit));
    ASSERT_TRUE(four.ok()) << four.status().message();
    EXPECT_EQ(four->files_changed, 0);
    repo.Write("a.txt", "c\n");
    Result<Checkpoint> five = s.Await(s.checkpoints.Take(cr, 5, 5, "", four->commit));
    ASSERT_TRUE(five.ok()) << five.status().message();
    EXPECT_EQ(five->files_changed, 1);
    EXPECT_EQ(repo.Out({"show", five->commit + ":a.txt"}), "c\n");
}

TEST(FunctionalCheckpoint, AStaleParentHintIsNoticedAndTheSnapshotChainsOnTheRefAsItIs)
{
    Repo repo;
    repo.Write("a.txt", "a\n");
    repo.Commit("init");
    Snapshots s;
    CheckpointRepo cr = s.Open(repo.top, 4);
    Result<Checkpoint> base = s.Await(s.checkpoints.TakeBase(cr, 4));
    ASSERT_TRUE(base.ok()) << base.status().message();
    repo.Write("a.txt", "b\n");
    Result<Checkpoint> one = s.Await(s.checkpoints.Take(cr, 4, 1, "", base->commit));
    ASSERT_TRUE(one.ok()) << one.status().message();
    // As after a kill: the ref moved on (iteration 1's snapshot) but the loop still thinks base.
    repo.Write("a.txt", "c\n");
    Result<Checkpoint> two = s.Await(s.checkpoints.Take(cr, 4, 2, "", base->commit));
    ASSERT_TRUE(two.ok()) << two.status().message();
    EXPECT_EQ(repo.Out({"rev-parse", "refs/ralph/runs/4^"}), one->commit + "\n");
    EXPECT_EQ(repo.Out({"rev-parse", "refs/ralph/runs/4"}), two->commit + "\n");
    EXPECT_EQ(two->files_changed, 1);
}

TEST(FunctionalCheckpoint, KilledInTheMiddleOfSnapshotsTheRefIsAlwaysACompleteSnapshot)
{
    Repo repo;
    for (int i = 0; i < 200; ++i) repo.Write("d" + std::to_string(i % 10) + "/f" + std::to_string(i) + ".txt", "v0\n");
    repo.Commit("init");
    {
        Snapshots s;
        CheckpointRepo cr = s.Open(repo.top, 1);
        ASSERT_TRUE(s.Await(s.checkpoints.TakeBase(cr, 1)).ok());
    }
    std::mt19937 rng(std::random_device{}());
    for (int kill_n = 0; kill_n < 15; ++kill_n) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            // As a ralphd would: one snapshot after another, the work tree changing between them,
            // until it is killed (its git processes, in groups of their own, live on).
            Snapshots s;
            auto cr = s.Await(s.checkpoints.Open(repo.top, 1));
            for (int n = 1; cr; ++n) {
                for (int i = 0; i < 40; ++i)
                    WriteFile(repo.top + "/d" + std::to_string(i % 10) + "/f" + std::to_string((n * 40 + i) % 200) + ".txt",
                              "v" + std::to_string(n) + "\n");
                (void)s.Await(s.checkpoints.Take(*cr, 1, n, ""));
            }
            _exit(1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 400));
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        auto fsck = RunProgram({"/usr/bin/git", "-C", repo.top, "fsck", "--no-progress", "--no-dangling"}, {});
        EXPECT_EQ(fsck.exit_code, 0) << "after kill " << kill_n << ": " << fsck.out << fsck.err;
        auto tree = RunProgram({"/usr/bin/git", "-C", repo.top, "ls-tree", "-r", "--name-only", "refs/ralph/runs/1"}, {});
        EXPECT_EQ(tree.exit_code, 0) << "after kill " << kill_n << ": " << tree.err;
        EXPECT_NE(tree.out.find("d0/f0.txt"), std::string::npos) << "after kill " << kill_n;
    }
    // Whatever the last kill left (a stale lock, a half-written index), the next snapshot goes on
    // from where the ref is, once the killed process's git commands have finished.
    auto git_running_here = [&] {
        for (const auto& entry : fs::directory_iterator("/proc")) {
            std::error_code ec;
            if (fs::read_symlink(entry.path() / "cwd", ec) == fs::path(repo.top) && !ec &&
                ReadFile((entry.path() / "comm").string()).rfind("git", 0) == 0)
                return true;
        }
        return false;
    };
    ASSERT_TRUE(WaitFor([&] { return !git_running_here(); }, std::chrono::seconds(30)));
    const std::string before = repo.Out({"rev-parse", "refs/ralph/runs/1"});
    repo.Write("after.txt", "after the kills\n");
    Snapshots s;
    CheckpointRepo cr = s.Open(repo.top, 1);
    Result<Checkpoint> next = s.Await(s.checkpoints.Take(cr, 1, 99, ""));
    ASSERT_TRUE(next.ok()) << next.status().message();
    EXPECT_EQ(repo.Out({"rev-parse", "refs/ralph/runs/1^"}), before);
    EXPECT_EQ(repo.Out({"show", "refs/ralph/runs/1:after.txt"}), "after the kills\n");
}

}  // namespace
}  // namespace ralph::test
