// Task references resolve exactly as SPEC §1 says; prompts render their variables; prd.json is
// read like the earlier Python ralph read it; the promise is found only as the exact tag.
#include "common/errors.h"
#include "daemon/iteration.h"
#include "daemon/task.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace ralph {
namespace {

using test::WriteFile;

class UnitTask : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/ralph-task-XXXXXX";
        root_ = mkdtemp(tmpl);
        project_ = root_ + "/proj";
        std::filesystem::create_directories(project_ + "/.git");
        std::filesystem::create_directories(project_ + "/src/deep");
        WriteFile(project_ + "/tasks/fix-tests/prompt.md", "fix {TASK_NAME}");
        WriteFile(project_ + "/tasks/use-dev-backend-locally/prd.json", R"({"userStories": []})");
        std::filesystem::create_directories(project_ + "/tasks/not-a-task");
    }
    void TearDown() override { std::filesystem::remove_all(root_); }
    std::string TaskNotFound(const std::string& ref, const std::string& cwd)
    {
        Result<Task> t = ResolveTask(ref, cwd);
        EXPECT_FALSE(t.ok()) << ref << " resolved";
        EXPECT_EQ(t.status().code(), kTaskNotFound);
        return t.status().message();
    }
    /// The task `ref` names from `cwd`; an empty Task (and a failure) when it names none.
    static Task Resolve(const std::string& ref, const std::string& cwd)
    {
        Result<Task> t = ResolveTask(ref, cwd);
        EXPECT_TRUE(t.ok()) << ref << " from " << cwd << ": " << t.status().message();
        return t.ok() ? *t : Task{};
    }
    std::string root_, project_;
};

TEST_F(UnitTask, BareNameFromAnySubdirectory)
{
    for (std::string cwd : {project_, project_ + "/src", project_ + "/src/deep", project_ + "/tasks"}) {
        Task t = Resolve("fix-tests", cwd);
        EXPECT_EQ(t.dir, project_ + "/tasks/fix-tests") << cwd;
        EXPECT_EQ(t.name, "fix-tests");
        EXPECT_EQ(t.project_root, project_);
    }
}

TEST_F(UnitTask, TasksSlashNameAndPaths)
{
    EXPECT_EQ(Resolve("tasks/fix-tests", project_ + "/src").dir, project_ + "/tasks/fix-tests");
    EXPECT_EQ(Resolve("tasks/fix-tests/", project_).dir, project_ + "/tasks/fix-tests");
    EXPECT_EQ(Resolve(project_ + "/tasks/fix-tests", "/").dir, project_ + "/tasks/fix-tests");
    EXPECT_EQ(Resolve("../tasks/fix-tests", project_ + "/src").dir, project_ + "/tasks/fix-tests");
    EXPECT_EQ(Resolve("use-dev-backend-locally", project_).dir, project_ + "/tasks/use-dev-backend-locally");
}

TEST_F(UnitTask, UnknownNameListsTasksAndTheClosest)
{
    std::string msg = TaskNotFound("use-dev-backend", project_ + "/src");
    EXPECT_NE(msg.find("did you mean 'use-dev-backend-locally'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fix-tests"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("not-a-task"), std::string::npos) << msg;  // no prompt.md nor prd.json
    msg = TaskNotFound("zzzzzzzzzz", project_);
    EXPECT_EQ(msg.find("did you mean"), std::string::npos) << msg;
    msg = TaskNotFound("not-a-task", project_ + "/tasks");
    EXPECT_NE(msg.find("not a task"), std::string::npos) << msg;
    msg = TaskNotFound("fix-tests", root_);
    EXPECT_NE(msg.find("not inside a git repository"), std::string::npos) << msg;
}

TEST_F(UnitTask, OutsideGitTheGrandparentIsTheProject)
{
    std::string plain = root_ + "/plain";
    WriteFile(plain + "/tasks/t/prompt.md", "x");
    Task t = Resolve("t", plain + "/tasks");
    EXPECT_EQ(t.project_root, plain);
    EXPECT_EQ(Resolve(plain + "/tasks/t", "/").project_root, plain);
}

TEST_F(UnitTask, ListsTasks)
{
    std::string root;
    auto tasks = ListTasks(project_ + "/src", &root);
    EXPECT_EQ(root, project_);
    ASSERT_EQ(tasks.size(), 2u);
    EXPECT_EQ(tasks[0].name, "fix-tests");
    EXPECT_EQ(tasks[1].name, "use-dev-backend-locally");
}

TEST(UnitPrompt, RendersKnownVariablesAndLeavesOthers)
{
    PromptVars v;
    v.task = Task{"t", "/p/tasks/t", "/p"};
    v.run_id = 7;
    v.iteration = 2;
    v.max_iterations = 10;
    v.completion_promise = "DONE";
    v.branch_name = "ralph/t";
    std::string out = RenderPrompt("{TASK_NAME} {TASK_DIR} {PROJECT_ROOT} {PRD_FILE} {PROGRESS_FILE} {BRANCH_NAME} "
                                   "{RUN_ID} {ITERATION}/{MAX_ITERATIONS} <promise>{COMPLETION_PROMISE}</promise> "
                                   "{UNKNOWN} {lower} {json: 1} {",
                                   v);
    EXPECT_EQ(out, "t /p/tasks/t /p /p/tasks/t/prd.json /p/tasks/t/progress.txt ralph/t 7 2/10 "
                   "<promise>DONE</promise> {UNKNOWN} {lower} {json: 1} {");
    EXPECT_NE(RenderPrompt(kDefaultPrompt, v).find("<promise>DONE</promise>"), std::string::npos);
}

TEST_F(UnitTask, PromptTemplateLookupOrder)
{
    Task t = Resolve("use-dev-backend-locally", project_);
    std::string source;
    EXPECT_EQ(LoadPromptTemplate(t, &source), kDefaultPrompt);
    WriteFile(project_ + "/.ralph/prompt.md", "project-wide");
    EXPECT_EQ(LoadPromptTemplate(t, &source), "project-wide");
    EXPECT_EQ(source, project_ + "/.ralph/prompt.md");
    WriteFile(t.dir + "/prompt.md", "own");
    EXPECT_EQ(LoadPromptTemplate(t, &source), "own");
}

TEST_F(UnitTask, PrdLikeTheEarlierRalph)
{
    std::string path = root_ + "/prd.json";
    EXPECT_FALSE(ReadPrd(path).present);
    WriteFile(path, R"({"branchName": "b", "extra": {"kept": true}, "userStories": [
        {"id": "US-001", "title": "a", "priority": 1, "passes": true, "acceptanceCriteria": ["x"]},
        {"id": "US-002", "title": "b", "priority": 2, "passes": false}]})");
    PrdStatus s = ReadPrd(path);
    EXPECT_TRUE(s.valid());
    EXPECT_EQ(s.total, 2);
    EXPECT_EQ(s.passing, 1);
    EXPECT_EQ(s.branch_name, "b");
    EXPECT_FALSE(s.complete());
    WriteFile(path, R"({"userStories": [{"id": "US-001", "passes": true}, {"id": "US-002", "passes": true}]})");
    EXPECT_TRUE(ReadPrd(path).complete());
    WriteFile(path, R"({"userStories": []})");
    EXPECT_FALSE(ReadPrd(path).complete());  // nothing to do is not done
    WriteFile(path, R"({"userStories": [{"id": "US-001"}]})");
    EXPECT_FALSE(ReadPrd(path).complete());  // a missing passes is false
}

TEST_F(UnitTask, BrokenPrdNamesTheLine)
{
    std::string path = root_ + "/prd.json";
    WriteFile(path, "{\n  \"userStories\": [\n    {\"id\": 1,,}\n  ]\n}\n");
    PrdStatus s = ReadPrd(path);
    EXPECT_FALSE(s.valid());
    EXPECT_NE(s.error.find("line 3"), std::string::npos) << s.error;
    WriteFile(path, R"({"userStories": {}})");
    EXPECT_NE(ReadPrd(path).error.find("must be an array"), std::string::npos);
    WriteFile(path, R"({"userStories": [{"passes": "yes"}]})");
    EXPECT_NE(ReadPrd(path).error.find("true or false"), std::string::npos);
    WriteFile(path, "[1, 2]");
    EXPECT_FALSE(ReadPrd(path).valid());
    WriteFile(path, "");
    EXPECT_FALSE(ReadPrd(path).valid());
}

TEST(UnitPromise, OnlyTheExactTag)
{
    EXPECT_TRUE(ContainsPromise("Done. <promise>COMPLETE</promise>", "COMPLETE"));
    EXPECT_TRUE(ContainsPromise("<promise>\n  COMPLETE \n</promise>", "COMPLETE"));
    EXPECT_TRUE(ContainsPromise("<promise>NO</promise> then <promise>COMPLETE</promise>", "COMPLETE"));
    EXPECT_FALSE(ContainsPromise("COMPLETE", "COMPLETE"));
    EXPECT_FALSE(ContainsPromise("<promise>COMPLETED</promise>", "COMPLETE"));
    EXPECT_FALSE(ContainsPromise("<promise>COMPLETE", "COMPLETE"));
    EXPECT_FALSE(ContainsPromise("<promise></promise>", "COMPLETE"));
}

TEST(UnitClosestName, SuggestsOnlyCloseNames)
{
    EXPECT_EQ(ClosestName("fix-test", {"fix-tests", "other"}), "fix-tests");
    EXPECT_EQ(ClosestName("use-dev", {"use-dev-backend-locally", "x"}), "use-dev-backend-locally");
    EXPECT_EQ(ClosestName("completely-different", {"fix-tests"}), "");
}

}  // namespace
}  // namespace ralph
