// Git checkpoints through the loop (SPEC §9, §8's no_progress): the real ralphd, ralph and
// opencode 1.18.33, the scripted model running a shell script of the test's as the agent's work.
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

namespace ralph::test {
namespace {

namespace json = boost::json;

/// git in a project, with an identity of its own (the test's HOME has none).
std::string Git(E2EEnv& env, const std::string& project, std::vector<std::string> args)
{
    args.insert(args.begin(), {"/usr/bin/git", "-C", project, "-c", "user.name=u", "-c", "user.email=u@u"});
    auto r = RunProgram(args, env.env);
    EXPECT_EQ(r.exit_code, 0) << args[7] << ": " << r.err;
    return r.out;
}

std::string UserState(E2EEnv& env, const std::string& project)
{
    return Git(env, project, {"rev-parse", "HEAD"}) + Git(env, project, {"symbolic-ref", "HEAD"}) +
           Git(env, project, {"ls-files", "--stage"}) + Git(env, project, {"stash", "list"}) +
           ReadFile(project + "/README.md");
}

const json::array& Iterations(const json::object& run) { return run.at("iterations").as_array(); }

TEST(E2EGit, EachIterationIsCheckpointedExactlyAndTheUsersStateIsUntouched)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    WriteFile(project + "/.gitignore", "build/\n");
    WriteFile(project + "/keep.txt", "one\ntwo\n");
    WriteFile(project + "/doomed.txt", "bye\n");
    WriteFile(project + "/move-me.txt", "a file that will be renamed\nwith some lines\nin it\n");
    // The agent's work: add, modify, delete, rename, a binary file, an ignored file.
    WriteFile(project + "/agent.sh",
              "echo new > added.txt\nprintf 'one\\nTWO\\n' > keep.txt\nrm doomed.txt\nmv move-me.txt moved.txt\n"
              "printf '\\211PNG\\000\\000\\001' > image.bin\nmkdir -p build && echo obj > build/out.o\n");
    Git(env, project, {"add", "-A"});
    Git(env, project, {"commit", "-qm", "files"});
    // The user's own state: a stash, a staged file, an uncommitted edit.
    WriteFile(project + "/README.md", "stashed edit\n");
    Git(env, project, {"stash", "-q"});
    WriteFile(project + "/staged.txt", "staged\n");
    Git(env, project, {"add", "staged.txt"});
    WriteFile(project + "/README.md", "# proj\nthe user's uncommitted edit\n");
    const std::string head = Git(env, project, {"rev-parse", "HEAD"});
    env.AddTask(project, "t", "BASH:sh agent.sh\nPROMISE\n");
    // Committed, so that the task directory is no change of the agent's.
    Git(env, project, {"add", "tasks"});
    Git(env, project, {"commit", "-qm", "task"});
    const std::string before = UserState(env, project);

    json::value started = env.RalphJson({"run", "t", "-n", "3"}, project);
    auto run = env.WaitRunEnd(started.at("id").as_int64());
    ASSERT_EQ(run.at("status"), "completed") << json::serialize(run);
    ASSERT_EQ(Iterations(run).size(), 1u) << json::serialize(run);
    const json::object& one = Iterations(run)[0].as_object();
    ASSERT_TRUE(one.at("checkpoint").is_string()) << json::serialize(run);
    ASSERT_TRUE(run.at("base").is_string()) << json::serialize(run);
    const std::string base(run.at("base").as_string()), cp(one.at("checkpoint").as_string());

    // The base holds the user's edit (so iteration 1's diff is the agent's alone); its parent is HEAD.
    EXPECT_EQ(Git(env, project, {"show", base + ":README.md"}), "# proj\nthe user's uncommitted edit\n");
    EXPECT_EQ(Git(env, project, {"rev-parse", base + "^"}), Git(env, project, {"rev-parse", "HEAD"}));
    EXPECT_EQ(Git(env, project, {"rev-parse", "refs/ralph/runs/" + std::to_string(run.at("id").as_int64())}), cp + "\n");
    EXPECT_EQ(Git(env, project, {"diff-tree", "-r", "-M", "--name-status", "--no-commit-id", base, cp}),
              "A\tadded.txt\nD\tdoomed.txt\nA\timage.bin\nM\tkeep.txt\nR100\tmove-me.txt\tmoved.txt\n");
    EXPECT_EQ(one.at("files_changed"), 5);
    EXPECT_EQ(one.at("insertions"), 2);
    EXPECT_EQ(one.at("deletions"), 2);
    EXPECT_EQ(one.at("commits"), 0);
    // The user's HEAD, branch, index, stash and edit are as they were; the ignored file is on disk only.
    EXPECT_EQ(UserState(env, project), before);
    EXPECT_TRUE(PathExists(project + "/build/out.o"));
    EXPECT_EQ(Git(env, project, {"fsck", "--no-progress"}), "");
}

TEST(E2EGit, TheAgentsOwnCommitsAreCountedAndTheCheckpointStillRight)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t",
                "BASH:sh -c 'echo x > a.txt && git add a.txt && git -c user.name=a -c user.email=a@a commit -qm agent && echo y > b.txt'\nPROMISE\n");
    Git(env, project, {"add", "tasks"});
    Git(env, project, {"commit", "-qm", "task"});
    json::value started = env.RalphJson({"run", "t"}, project);
    auto run = env.WaitRunEnd(started.at("id").as_int64());
    ASSERT_EQ(Iterations(run).size(), 1u) << json::serialize(run);
    const json::object& one = Iterations(run)[0].as_object();
    EXPECT_EQ(one.at("commits"), 1) << json::serialize(one);
    EXPECT_EQ(one.at("files_changed"), 2) << json::serialize(one);  // a.txt (committed) and b.txt
    std::string cp(one.at("checkpoint").as_string());
    EXPECT_EQ(Git(env, project, {"show", cp + ":b.txt"}), "y\n");
}

TEST(E2EGit, IterationsThatChangeNothingStopTheRunAsNoProgress)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "idle", "TEXTONLY\n");
    WriteFile(project + "/tasks/idle/ralph.ini", "[run]\nmax_idle_iterations = 3\n");
    Git(env, project, {"add", "tasks"});
    Git(env, project, {"commit", "-qm", "task"});
    json::value started = env.RalphJson({"run", "idle", "-n", "10"}, project);
    auto run = env.WaitRunEnd(started.at("id").as_int64());
    EXPECT_EQ(run.at("status"), "stopped") << json::serialize(run);
    EXPECT_EQ(run.at("reason"), "no_progress") << json::serialize(run);
    EXPECT_EQ(run.at("iteration"), 3);
    for (const auto& it : Iterations(run)) EXPECT_EQ(it.at("files_changed"), 0);
    // At the iteration limit, the limit is the reason.
    started = env.RalphJson({"run", "idle", "-n", "3"}, project);
    run = env.WaitRunEnd(started.at("id").as_int64());
    EXPECT_EQ(run.at("reason"), "max_iterations") << json::serialize(run);
}

TEST(E2EGit, OutsideGitCheckpointsAreOffAndSaidOnce)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.dir + "/plain";
    WriteFile(project + "/README.md", "no git here\n");
    env.AddTask(project, "t", "TEXTONLY\n");
    json::value started = env.RalphJson({"run", "t", "-n", "2"}, project);
    auto run = env.WaitRunEnd(started.at("id").as_int64());
    EXPECT_EQ(run.at("reason"), "max_iterations") << json::serialize(run);
    EXPECT_TRUE(run.at("base").is_null());
    for (const auto& it : Iterations(run)) EXPECT_TRUE(it.at("checkpoint").is_null());
    auto logs = env.Ralph({"logs", std::to_string(run.at("id").as_int64())}, project);
    auto first = logs.out.find("not in a git work tree");
    EXPECT_NE(first, std::string::npos) << logs.out;
    EXPECT_EQ(logs.out.find("not in a git work tree", first + 1), std::string::npos) << logs.out;
}

TEST(E2EGit, DiffShowsEachIterationAndRestoreGoesBackAndCanBeUndone)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    WriteFile(project + "/notes.txt", "one\n");
    // Each iteration appends a line to notes.txt; the third completes.
    WriteFile(project + "/agent.sh", "echo more >> notes.txt\n");
    Git(env, project, {"add", "-A"});
    Git(env, project, {"commit", "-qm", "files"});
    env.AddTask(project, "t", "BASH:sh agent.sh\nCOMPLETE_AFTER:3 SLOW:1500\n");  // 3 iterations of >= 1.5 s
    Git(env, project, {"add", "tasks"});
    Git(env, project, {"commit", "-qm", "task"});
    WriteFile(project + "/README.md", "the user's edit\n");  // uncommitted: part of the base

    // Refused while the run is active.
    json::value started = env.RalphJson({"run", "t", "-n", "5"}, project);
    const std::string id = std::to_string(started.at("id").as_int64());
    auto refused = env.Ralph({"restore", id}, project);
    EXPECT_NE(refused.exit_code, 0) << refused.out;
    EXPECT_NE(refused.err.find("is active"), std::string::npos) << refused.err;
    auto run = env.WaitRunEnd(started.at("id").as_int64());
    ASSERT_EQ(run.at("status"), "completed") << json::serialize(run);
    ASSERT_EQ(run.at("iteration"), 3);

    // The whole run, and one iteration, as JSON and as a patch.
    json::value whole = env.RalphJson({"diff", id}, project);
    EXPECT_TRUE(whole.at("iteration").is_null());
    EXPECT_EQ(whole.at("from"), run.at("base"));
    ASSERT_EQ(whole.at("files").as_array().size(), 1u) << json::serialize(whole);
    EXPECT_EQ(whole.at("files").as_array()[0].at("path"), "notes.txt");
    EXPECT_EQ(whole.at("files").as_array()[0].at("status"), "modified");
    EXPECT_EQ(whole.at("files").as_array()[0].at("insertions"), 3);
    json::value second = env.RalphJson({"diff", id, "--iteration", "2"}, project);
    EXPECT_EQ(second.at("files").as_array()[0].at("insertions"), 1);
    EXPECT_NE(std::string(second.at("patch").as_string()).find("+more"), std::string::npos);
    auto patch = env.Ralph({"diff", id, "--iteration", "2"}, project);
    EXPECT_EQ(patch.exit_code, 0) << patch.err;
    EXPECT_NE(patch.out.find("diff --git a/notes.txt b/notes.txt"), std::string::npos) << patch.out;
    auto stat = env.Ralph({"diff", id, "--stat"}, project);
    EXPECT_NE(stat.out.find("notes.txt | 3 +++"), std::string::npos) << stat.out;
    auto missing = env.Ralph({"diff", id, "--iteration", "9"}, project);
    EXPECT_NE(missing.exit_code, 0);
    EXPECT_NE(missing.err.find("there is no iteration 9"), std::string::npos) << missing.err;

    // Back to iteration 1, then to the base (the user's edit comes back with it), then undone.
    const std::string head = Git(env, project, {"rev-parse", "HEAD"});
    const std::string index = Git(env, project, {"ls-files", "--stage"});
    json::value to_one = env.RalphJson({"restore", id, "--iteration", "1"}, project);
    EXPECT_EQ(ReadFile(project + "/notes.txt"), "one\nmore\n");
    EXPECT_EQ(std::string(to_one.at("backup_ref").as_string()).rfind("refs/ralph/backup/", 0), 0u);
    WriteFile(project + "/README.md", "edited after the run\n");
    json::value to_base = env.RalphJson({"restore", id}, project);
    EXPECT_EQ(to_base.at("iteration"), 0);
    EXPECT_EQ(ReadFile(project + "/notes.txt"), "one\n");
    EXPECT_EQ(ReadFile(project + "/README.md"), "the user's edit\n");
    EXPECT_EQ(Git(env, project, {"rev-parse", "HEAD"}), head);
    EXPECT_EQ(Git(env, project, {"ls-files", "--stage"}), index);
    const std::string backup(to_base.at("backup_ref").as_string());
    Git(env, project, {"restore", "--source=" + backup, "--worktree", "--", "."});
    EXPECT_EQ(ReadFile(project + "/notes.txt"), "one\nmore\n");
    EXPECT_EQ(ReadFile(project + "/README.md"), "edited after the run\n");
}

TEST(E2EGit, ARepositoryWithoutCommitsFailingHooksAndSigningStillGetCheckpoints)
{
    E2EEnv env;  // its HOME has no .gitconfig: no identity either
    env.StartDaemon();
    std::string project = env.dir + "/fresh";
    WriteFile(project + "/README.md", "not committed yet\n");
    ASSERT_EQ(RunProgram({"/usr/bin/git", "init", "-q", project}, env.env).exit_code, 0);
    Git(env, project, {"config", "commit.gpgSign", "true"});
    for (const char* hook : {"pre-commit", "commit-msg", "post-commit"}) {
        WriteFile(project + "/.git/hooks/" + hook, "#!/bin/sh\nexit 1\n");
        chmod((project + "/.git/hooks/" + hook).c_str(), 0755);
    }
    env.AddTask(project, "t", "WRITE:made.txt=x PROMISE\n");
    json::value started = env.RalphJson({"run", "t", "--worktree"}, project);  // no commit: cannot have one
    auto run = env.WaitRunEnd(started.at("id").as_int64());
    ASSERT_EQ(run.at("status"), "completed") << json::serialize(run);
    EXPECT_TRUE(run.at("worktree").is_null());
    ASSERT_TRUE(run.at("base").is_string()) << json::serialize(run);
    ASSERT_EQ(Iterations(run).size(), 1u);
    const std::string cp(Iterations(run)[0].at("checkpoint").as_string());
    EXPECT_EQ(Git(env, project, {"show", cp + ":made.txt"}), "x");
    EXPECT_EQ(Git(env, project, {"log", "-1", "--format=%an <%ae>", cp}), "ralph <ralph@localhost>\n");
    // Still no commit of the user's, nothing staged.
    EXPECT_NE(RunProgram({"/usr/bin/git", "-C", project, "rev-parse", "-q", "--verify", "HEAD"}, env.env).exit_code, 0);
    EXPECT_EQ(Git(env, project, {"ls-files", "--stage"}), "");
    auto logs = env.Ralph({"logs", std::to_string(run.at("id").as_int64())}, project);
    EXPECT_NE(logs.out.find("no commit yet"), std::string::npos) << logs.out;
}

}  // namespace
}  // namespace ralph::test
