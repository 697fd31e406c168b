// The up-front checks of SPEC §8 as pure logic: which model and agent names a server's answers
// offer and what the error says, which prompts cannot be sent, and the stall_timeout key.
#include "daemon/config.h"
#include "daemon/run_checks.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace ralph {
namespace {

namespace json = boost::json;

// Trimmed from what opencode 1.18.33 answered to GET /config/providers and GET /agent.
const json::value kProviders = json::parse(R"({"providers": [
    {"id": "fake", "models": {"fake-model": {"id": "fake-model"}, "fake-large": {"id": "fake-large"}}},
    {"id": "anthropic", "models": {"claude-sonnet-4": {"id": "claude-sonnet-4"}}}],
    "default": {"fake": "fake-model"}})");
const json::value kAgents = json::parse(R"([
    {"name": "build", "mode": "primary", "native": true}, {"name": "compaction", "mode": "primary", "hidden": true},
    {"name": "explore", "mode": "subagent"}, {"name": "plan", "mode": "primary"}])");

TEST(UnitLoopChecks, KnownModelAndAgentPass)
{
    EXPECT_EQ(ModelProblem(kProviders, "fake/fake-model"), "");
    EXPECT_EQ(ModelProblem(kProviders, "anthropic/claude-sonnet-4"), "");
    EXPECT_EQ(AgentProblem(kAgents, "build"), "");
    EXPECT_EQ(AgentProblem(kAgents, "explore"), "");
    EXPECT_EQ(AgentProblem(kAgents, "compaction"), "");  // hidden, but it exists
}

TEST(UnitLoopChecks, UnknownModelListsWhatExistsAndTheClosest)
{
    std::string problem = ModelProblem(kProviders, "fake/fake-modle");
    EXPECT_NE(problem.find("unknown model 'fake/fake-modle'"), std::string::npos) << problem;
    EXPECT_NE(problem.find("did you mean 'fake/fake-model'?"), std::string::npos) << problem;
    EXPECT_NE(problem.find("fake/fake-model, fake/fake-large, anthropic/claude-sonnet-4"), std::string::npos) << problem;
    // The model id of another provider is no match.
    EXPECT_NE(ModelProblem(kProviders, "anthropic/fake-model"), "");
    // Nothing close: no suggestion, still the list.
    problem = ModelProblem(kProviders, "openai/gpt-9");
    EXPECT_EQ(problem.find("did you mean"), std::string::npos) << problem;
    EXPECT_NE(problem.find("anthropic/claude-sonnet-4"), std::string::npos) << problem;
}

TEST(UnitLoopChecks, UnknownAgentListsVisibleAgentsAndTheClosest)
{
    std::string problem = AgentProblem(kAgents, "buidl");
    EXPECT_NE(problem.find("unknown agent 'buidl'; did you mean 'build'?"), std::string::npos) << problem;
    EXPECT_NE(problem.find("build, explore, plan."), std::string::npos) << problem;
    EXPECT_EQ(problem.find("compaction"), std::string::npos) << problem;
    // A server answer of the wrong shape lists nothing rather than crashing.
    EXPECT_NE(AgentProblem(json::object{}, "build").find("(none)"), std::string::npos);
    EXPECT_NE(ModelProblem(json::array{}, "a/b").find("(none)"), std::string::npos);
}

class UnitPromptProblem : public ::testing::Test {
protected:
    void SetUp() override
    {
        root = std::filesystem::temp_directory_path() / ("ralph-prompt-" + std::to_string(getpid()));
        std::filesystem::create_directories(root / "tasks" / "t");
        task = Task{"t", (root / "tasks" / "t").string(), root.string()};
    }
    void TearDown() override { std::filesystem::remove_all(root); }
    std::filesystem::path root;
    Task task;
};

TEST_F(UnitPromptProblem, AFileWithTextIsFine)
{
    test::WriteFile(task.dir + "/prompt.md", "do it\n");
    EXPECT_EQ(PromptProblem(task), "");
}

TEST_F(UnitPromptProblem, EmptyOrBlankPromptIsAProblem)
{
    test::WriteFile(task.dir + "/prompt.md", "");
    EXPECT_NE(PromptProblem(task).find("prompt.md is empty"), std::string::npos) << PromptProblem(task);
    test::WriteFile(task.dir + "/prompt.md", " \n\t\n");
    EXPECT_NE(PromptProblem(task).find("is empty"), std::string::npos) << PromptProblem(task);
}

TEST_F(UnitPromptProblem, DirectoryPromptIsAProblem)
{
    std::filesystem::create_directories(task.dir + "/prompt.md");
    EXPECT_NE(PromptProblem(task).find("prompt.md is a directory"), std::string::npos) << PromptProblem(task);
}

TEST_F(UnitPromptProblem, TheProjectPromptIsCheckedWhenTheTaskHasNone)
{
    test::WriteFile(task.dir + "/prd.json", R"({"userStories": []})");
    std::filesystem::create_directories(root / ".ralph");
    test::WriteFile((root / ".ralph" / "prompt.md").string(), "");
    EXPECT_NE(PromptProblem(task).find(".ralph/prompt.md is empty"), std::string::npos) << PromptProblem(task);
    // The task's own prompt wins over the project's.
    test::WriteFile(task.dir + "/prompt.md", "do it\n");
    EXPECT_EQ(PromptProblem(task), "");
}

TEST(UnitLoopChecks, StallMessageGivesOpencodesErrorWhenThereIsOne)
{
    EXPECT_EQ(StallMessage("", std::chrono::minutes(2)),
              "opencode accepted the prompt but the iteration never started: no answer and no busy status within 2m "
              "(run.stall_timeout)");
    EXPECT_EQ(StallMessage("UnknownError: Agent not found: \"x\"", std::chrono::seconds(5)),
              "UnknownError: Agent not found: \"x\" (opencode reported this error and the session did not go idle "
              "within 5s, run.stall_timeout)");
}

TEST(UnitLoopChecks, StallTimeoutComesFromTheTaskIniAsItIsNow)
{
    auto root = std::filesystem::temp_directory_path() / ("ralph-stall-task-" + std::to_string(getpid()));
    std::filesystem::create_directories(root / "tasks" / "t");
    Task task{"t", (root / "tasks" / "t").string(), root.string()};
    RunSettings config;
    config.stall_timeout = Millis(7000);
    EXPECT_EQ(StallTimeout(config, task), Millis(7000));
    test::WriteFile(task.dir + "/ralph.ini", "[run]\nstall_timeout = 3s\n");
    EXPECT_EQ(StallTimeout(config, task), Millis(3000));
    test::WriteFile(task.dir + "/ralph.ini", "[run]\nstall_timeout = never\n");  // broken: the config's value
    EXPECT_EQ(StallTimeout(config, task), Millis(7000));
    std::filesystem::remove_all(root);
}

TEST(UnitLoopChecks, StallTimeoutKeyDefaultsToTwoMinutesAndIsRead)
{
    EXPECT_EQ(RunSettings{}.stall_timeout, Millis(std::chrono::minutes(2)));
    auto dir = std::filesystem::temp_directory_path() / ("ralph-stall-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    test::WriteFile((dir / "ralph.ini").string(), "[run]\nstall_timeout = 90s\n");
    EXPECT_EQ(ApplyTaskIni(RunSettings{}, (dir / "ralph.ini").string()).stall_timeout, Millis(90000));
    test::WriteFile((dir / "ralph.ini").string(), "[run]\nstall_timeout = soon\n");
    try {
        ApplyTaskIni(RunSettings{}, (dir / "ralph.ini").string());
        ADD_FAILURE() << "a bad stall_timeout was accepted";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("run.stall_timeout"), std::string::npos) << e.what();
    }
    EXPECT_EQ(LoadConfig((dir / "none.conf").string(), {{"run.stall_timeout", "5s"}}).run.stall_timeout, Millis(5000));
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ralph
