// Git checkpoints through the loop (SPEC §9, §8's no_progress): the real ralphd, ralph and
// opencode 1.18.33, the scripted model running a shell script of the test's as the agent's work.
#include "tests/harness.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ralph::test
