// Worktrees (SPEC §9): two runs in one project never share a work tree. The real ralphd, ralph and
// opencode 1.18.33 with the scripted model.
#include "tests/harness.h"

#include <gtest/gtest.h>

namespace ralph::test {
namespace {

namespace json = boost::json;

CommandResult Git(E2EEnv& env, const std::string& dir, std::vector<std::string> args)
{
    args.insert(args.begin(), {"/usr/bin/git", "-C", dir, "-c", "user.name=u", "-c", "user.email=u@u"});
    return RunProgram(args, env.env);
}

TEST(E2EWorktree, TwoRunsOfOneProjectUnderAutoNeverShareATree)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "a", "WRITE:a.txt=from-a SLOW:1000 COMPLETE_AFTER:2\n");
    ASSERT_EQ(Git(env, project, {"add", "tasks"}).exit_code, 0);
    ASSERT_EQ(Git(env, project, {"commit", "-qm", "task a"}).exit_code, 0);
    env.AddTask(project, "b", "WRITE:b.txt=from-b COMPLETE_AFTER:2\n");  // not committed: copied into the worktree

    const std::string user_branch = Git(env, project, {"symbolic-ref", "HEAD"}).out;
    json::value a = env.RalphJson({"run", "a"}, project);
    json::value b = env.RalphJson({"run", "b"}, project);
    auto run_a = env.WaitRunEnd(a.at("id").as_int64());
    auto run_b = env.WaitRunEnd(b.at("id").as_int64());
    ASSERT_EQ(run_a.at("status"), "completed") << json::serialize(run_a);
    ASSERT_EQ(run_b.at("status"), "completed") << json::serialize(run_b);

    // The first works in the project; the second, started beside it, in a worktree of its own.
    EXPECT_TRUE(run_a.at("worktree").is_null());
    ASSERT_TRUE(run_b.at("worktree").is_string()) << json::serialize(run_b);
    const std::string wt(run_b.at("worktree").as_string());
    const std::string branch = "ralph/b-" + std::to_string(run_b.at("id").as_int64());
    EXPECT_EQ(run_b.at("branch"), json::value(branch));
    EXPECT_EQ(wt, env.dir + "/data/ralph/worktrees/proj-" + std::to_string(run_b.at("id").as_int64()));
    EXPECT_EQ(run_b.at("project"), run_a.at("project"));  // the original's, as is the task directory
    EXPECT_EQ(run_b.at("task_dir"), json::value(project + "/tasks/b"));
    // Neither sees the other's files.
    EXPECT_EQ(ReadFile(project + "/a.txt"), "from-a");
    EXPECT_FALSE(PathExists(project + "/b.txt"));
    EXPECT_EQ(ReadFile(wt + "/b.txt"), "from-b");
    EXPECT_FALSE(PathExists(wt + "/a.txt"));
    EXPECT_TRUE(PathExists(wt + "/tasks/b/prompt.md"));
    // The worktree's work is committed on its branch; the checkpoints hold each run's own.
    EXPECT_EQ(Git(env, project, {"show", branch + ":b.txt"}).out, "from-b");
    EXPECT_EQ(Git(env, project, {"show", "refs/ralph/runs/" + std::to_string(run_a.at("id").as_int64()) + ":a.txt"}).out,
              "from-a");
    EXPECT_EQ(Git(env, project, {"symbolic-ref", "HEAD"}).out, user_branch);  // the user's branch is still checked out
    auto show = env.Ralph({"show", std::to_string(run_b.at("id").as_int64())}, project);
    EXPECT_NE(show.out.find("merge " + branch), std::string::npos) << show.out;

    // clean: refused while the worktree holds a file nothing else has; then removed, the branch kept.
    const std::string id_b = std::to_string(run_b.at("id").as_int64());
    WriteFile(wt + "/scratch.txt", "only here\n");
    auto refused = env.Ralph({"clean", id_b}, project);
    EXPECT_NE(refused.exit_code, 0);
    EXPECT_NE(refused.err.find("scratch.txt"), std::string::npos) << refused.err << env.DaemonStderr();
    EXPECT_TRUE(PathExists(wt + "/scratch.txt"));
    json::value cleaned = env.RalphJson({"clean", id_b, "--force"}, project);
    ASSERT_EQ(cleaned.at("cleaned").as_array().size(), 1u) << json::serialize(cleaned);
    EXPECT_EQ(cleaned.at("cleaned").as_array()[0].at("branch"), json::value(branch));
    EXPECT_FALSE(PathExists(wt));
    EXPECT_EQ(Git(env, project, {"rev-parse", "-q", "--verify", branch}).exit_code, 0);
    // --checkpoints deletes the run's ref too.
    env.RalphJson({"clean", id_b, "--checkpoints"}, project);
    EXPECT_NE(Git(env, project, {"rev-parse", "-q", "--verify", "refs/ralph/runs/" + id_b}).exit_code, 0);
}

TEST(E2EWorktree, AlwaysGivesAWorktreeAndNeverWorksInPlace)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    // {TASK_DIR} in the prompt names the worktree's copy of the task directory.
    env.AddTask(project, "t", "WRITE:out.txt=x WRITE:{TASK_DIR}/from-prompt.txt=y PROMISE\n");
    json::value own = env.RalphJson({"run", "t", "--worktree"}, project);
    auto run = env.WaitRunEnd(own.at("id").as_int64());
    ASSERT_TRUE(run.at("worktree").is_string()) << json::serialize(run);
    const std::string wt(run.at("worktree").as_string());
    EXPECT_TRUE(PathExists(wt + "/out.txt"));
    EXPECT_TRUE(PathExists(wt + "/tasks/t/from-prompt.txt"));
    EXPECT_FALSE(PathExists(project + "/out.txt"));
    EXPECT_FALSE(PathExists(project + "/tasks/t/from-prompt.txt"));
    json::value in_place = env.RalphJson({"run", "t", "--no-worktree"}, project);
    run = env.WaitRunEnd(in_place.at("id").as_int64());
    EXPECT_TRUE(run.at("worktree").is_null());
    EXPECT_TRUE(PathExists(project + "/out.txt"));
    EXPECT_TRUE(PathExists(project + "/tasks/t/from-prompt.txt"));
    auto both = env.Ralph({"run", "t", "--worktree", "--no-worktree"}, project);
    EXPECT_EQ(both.exit_code, 2) << both.err;
}

TEST(E2EWorktree, RestoreIsRefusedWhileAnotherRunWorksInTheSameTreeAndCleanFinishedTakesEveryEndedRun)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "long", "SLOW:2000 TEXTONLY\n");
    env.AddTask(project, "short", "WRITE:short.txt=x PROMISE\n");
    env.AddTask(project, "own", "WRITE:own.txt=x PROMISE\n");
    json::value own = env.RalphJson({"run", "own", "--worktree"}, project);
    json::value short_run = env.RalphJson({"run", "short", "--no-worktree"}, project);
    auto done = env.WaitRunEnd(short_run.at("id").as_int64());
    ASSERT_EQ(done.at("status"), "completed") << json::serialize(done);
    json::value long_run = env.RalphJson({"run", "long", "-n", "100", "--no-worktree"}, project);
    const std::string long_id = std::to_string(long_run.at("id").as_int64());
    // `short` has ended, but `long` works in the same tree: restoring it would pull files away.
    auto refused = env.Ralph({"restore", std::to_string(short_run.at("id").as_int64())}, project);
    EXPECT_NE(refused.exit_code, 0);
    EXPECT_NE(refused.err.find("run " + long_id + " (long) is active"), std::string::npos) << refused.err;
    EXPECT_TRUE(PathExists(project + "/short.txt"));
    env.Ralph({"stop", long_id, "--now"}, project);
    env.WaitRunEnd(long_run.at("id").as_int64());
    // --finished: every ended run with a worktree.
    auto own_run = env.WaitRunEnd(own.at("id").as_int64());
    ASSERT_TRUE(own_run.at("worktree").is_string()) << json::serialize(own_run);
    json::value cleaned = env.RalphJson({"clean", "--finished"}, project);
    ASSERT_EQ(cleaned.at("cleaned").as_array().size(), 1u) << json::serialize(cleaned);
    EXPECT_EQ(cleaned.at("cleaned").as_array()[0].at("run"), own.at("id"));
    EXPECT_FALSE(PathExists(std::string(own_run.at("worktree").as_string())));
    auto usage = env.Ralph({"clean"}, project);
    EXPECT_EQ(usage.exit_code, 2) << usage.err;
}

}  // namespace
}  // namespace ralph::test
