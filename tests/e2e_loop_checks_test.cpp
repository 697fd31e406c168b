// SPEC §8 "Up-front checks" end to end through the real ralph, ralphd, opencode 1.18.33 and the
// scripted model: a mistyped model or agent is refused before a run exists; an iteration that
// never starts, or whose session reports an error and never goes idle, ends at run.stall_timeout;
// a long quiet tool call does not; a prompt that is empty or a directory fails the run.
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace ralph::test {
namespace {

namespace json = boost::json;

json::array Runs(E2EEnv& env)
{
    auto reply = env.Call("run.list", json::object{{"all", true}});
    EXPECT_TRUE(reply.contains("result")) << json::serialize(reply);
    if (!reply.contains("result")) return {};
    return reply["result"].at("runs").as_array();
}

/// The message of the run's run.end event.
std::string EndMessage(E2EEnv& env, int64_t id)
{
    auto reply = env.Call("run.events", json::object{{"run", id}});
    if (!reply.contains("result")) return "";
    for (const auto& e : reply["result"].at("events").as_array())
        if (e.at("kind") == "run.end" && e.at("data").as_object().contains("message"))
            return std::string(e.at("data").at("message").as_string());
    return "";
}

/// Adds an agent to the opencode config the harness wrote, or removes it (`add` false).
void SetOpencodeAgent(E2EEnv& env, const std::string& name, bool add)
{
    std::string path = env.dir + "/config/opencode/opencode.json";
    json::value config = json::parse(ReadFile(path));
    if (add) config.as_object()["agent"] = json::object{{name, json::object{{"description", "a test agent"}, {"mode", "primary"}}}};
    else config.as_object().erase("agent");
    WriteFile(path, json::serialize(config));
}

TEST(E2ELoopChecks, UnknownAgentIsRefusedBeforeAnyRunWithTheClosestName)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "PROMISE\n");
    auto r = env.Ralph({"run", "t", "--agent", "buidl", "-f"}, project, {}, std::chrono::seconds(90));
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("unknown agent 'buidl'; did you mean 'build'?"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("build, explore, general, plan"), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("iteration started"), std::string::npos) << r.out;  // no iteration began
    // The socket API says -32602 and creates nothing.
    auto reply = env.Call("run.start", json::object{{"task", "t"}, {"cwd", project}, {"agent", "nosuchagent"}});
    ASSERT_TRUE(reply.contains("error")) << json::serialize(reply);
    EXPECT_EQ(reply["error"].at("code"), -32602);
    EXPECT_TRUE(Runs(env).empty());
    // Nothing reached the model, and no id was used up: the next good run is run 1.
    EXPECT_EQ(ReadFile(env.model->log_path).find("\"tools\":true"), std::string::npos);
    json::value run = env.RalphJson({"run", "t", "--agent", "build"}, project);
    EXPECT_EQ(run.at("id"), 1);
    EXPECT_EQ(env.WaitRunEnd(1).at("status"), "completed");
}

TEST(E2ELoopChecks, UnknownModelIsRefusedBeforeAnyRunWithTheClosestName)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "PROMISE\n");
    auto r = env.Ralph({"run", "t", "--model", "fake/fake-modle"}, project, {}, std::chrono::seconds(90));
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("unknown model 'fake/fake-modle'; did you mean 'fake/fake-model'?"), std::string::npos) << r.err;
    // The same from ralph.ini: the settings a run would use are what is checked.
    WriteFile(project + "/tasks/t/ralph.ini", "[run]\nmodel = nosuch/model\n");
    auto reply = env.Call("run.start", json::object{{"task", "t"}, {"cwd", project}});
    ASSERT_TRUE(reply.contains("error")) << json::serialize(reply);
    EXPECT_EQ(reply["error"].at("code"), -32602);
    EXPECT_NE(std::string(reply["error"].at("message").as_string()).find("fake/fake-model"), std::string::npos);
    EXPECT_TRUE(Runs(env).empty());
    WriteFile(project + "/tasks/t/ralph.ini", "[run]\nmodel = fake/fake-model\n");
    json::value run = env.RalphJson({"run", "t"}, project);
    EXPECT_EQ(run.at("id"), 1);
    EXPECT_EQ(env.WaitRunEnd(1).at("status"), "completed");
}

TEST(E2ELoopChecks, QuietToolCallLongerThanStallTimeoutIsNotEnded)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    // Scaled down from the 3-minute tool call under a 2-minute stall_timeout.
    // The stall timeout leaves room for a loaded machine to start the iteration (busy came ~2 s
    // after the prompt on a fresh instance here); the quiet tool call lasts well beyond it.
    env.AddTask(project, "quiet", "BASH:\"sleep 20\" COMPLETE_AFTER:1\n");
    WriteFile(project + "/tasks/quiet/ralph.ini", "[run]\nstall_timeout = 8s\nmax_consecutive_failures = 1\n");
    auto r = env.Ralph({"run", "quiet", "-f"}, project, {}, std::chrono::seconds(150));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << env.DaemonStderr();
    json::value run = env.RalphJson({"show", "quiet"}, project);
    EXPECT_EQ(run.at("status"), "completed") << json::serialize(run);
    ASSERT_EQ(run.at("iterations").as_array().size(), 1u);
    EXPECT_EQ(run.at("iterations").at(0).at("outcome"), "complete");
    const auto& it = run.at("iterations").at(0);
    EXPECT_GE(it.at("ended_at").as_int64() - it.at("started_at").as_int64(), 20000);
}

TEST(E2ELoopChecks, SessionErrorWithoutIdleEndsTheIterationAtStallTimeout)
{
    // The agent exists when the run starts and is gone from the restarted server: opencode then
    // accepts the prompt, reports "Agent not found" and never goes idle (facts §13).
    E2EEnv env;
    SetOpencodeAgent(env, "ghost", true);
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "BASH:\"sleep 60\"\n");
    WriteFile(project + "/tasks/t/ralph.ini", "[run]\nagent = ghost\nstall_timeout = 5s\nmax_iterations = 3\n");
    json::value started = env.RalphJson({"run", "t"}, project);
    int64_t id = started.at("id").as_int64();
    // Iteration 1 is in its tool call; the agent goes, and the server restarts without it.
    ASSERT_TRUE(WaitFor([&] { return ReadFile(env.model->log_path).find("\"tool-calls\"") != std::string::npos; },
                        std::chrono::seconds(90)))
        << ReadFile(env.model->log_path);
    SetOpencodeAgent(env, "ghost", false);
    auto restart = env.Ralph({"server", "restart"}, project);
    ASSERT_EQ(restart.exit_code, 0) << restart.err;
    ASSERT_TRUE(WaitFor(
        [&] {
            try {
                return env.Call("run.get", json::object{{"run", id}})["result"].at("status") != "running";
            } catch (const std::exception& e) {
                ADD_FAILURE() << "ralphd went away: " << e.what() << "\n" << env.DaemonStderr();
                return true;
            }
        },
        std::chrono::seconds(120)));
    json::object run = env.WaitRunEnd(id, std::chrono::seconds(10));
    auto got = env.Call("run.get", json::object{{"run", id}});
    ASSERT_TRUE(got.contains("result"));
    const auto& iterations = got["result"].at("iterations").as_array();
    // Iteration 1 went with the server (its outcome is the restart's business, not this test's);
    // the next ones met the missing agent. The first right after the restart may miss opencode's
    // error event while ralphd's event stream reconnects; it then ends by the never-started rule.
    ASSERT_EQ(iterations.size(), 3u) << json::serialize(iterations);
    EXPECT_EQ(iterations.at(1).at("outcome"), "error") << json::serialize(iterations.at(1));
    const auto& it = iterations.at(2);
    EXPECT_EQ(it.at("outcome"), "error") << json::serialize(it);
    std::string error(it.at("error").as_string());
    EXPECT_NE(error.find("Agent not found"), std::string::npos) << error;
    EXPECT_NE(error.find("did not go idle within 5s, run.stall_timeout"), std::string::npos) << error;
    EXPECT_GE(it.at("ended_at").as_int64() - it.at("started_at").as_int64(), 5000);
}

TEST(E2ELoopChecks, IterationThatNeverStartsEndsAtStallTimeout)
{
    // A plugin whose chat.message hook never returns: opencode accepts the prompt, and then no
    // busy status, no assistant message, no error, no idle ever come.
    E2EEnv env;
    WriteFile(env.dir + "/config/opencode/plugin/hang.js",
              "export const Hang = async () => ({\n"
              "  \"chat.message\": async (input, output) => {\n"
              "    if (JSON.stringify(output).includes(\"HANG_HOOK\")) await new Promise(() => {});\n"
              "  },\n"
              "});\n");
    // opencode installs plugin dependencies (with npm's arborist) before loading a plugin: make
    // that fail at once instead of retrying an unreachable registry.
    env.env["npm_config_offline"] = "true";
    env.env["npm_config_fetch_retries"] = "0";
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "HANG_HOOK TEXTONLY\n");
    WriteFile(project + "/tasks/t/ralph.ini", "[run]\nstall_timeout = 3s\nmax_consecutive_failures = 1\n");
    auto r = env.Ralph({"run", "t", "-f"}, project, {}, std::chrono::seconds(150));
    EXPECT_EQ(r.exit_code, 5) << r.out << r.err << env.DaemonStderr();
    json::value run = env.RalphJson({"show", "t"}, project);
    EXPECT_EQ(run.at("status"), "failed") << json::serialize(run) << ReadFile(env.model->log_path);
    ASSERT_EQ(run.at("iterations").as_array().size(), 1u);
    const auto& it = run.at("iterations").at(0);
    EXPECT_EQ(it.at("outcome"), "error");
    std::string error(it.at("error").as_string());
    EXPECT_NE(error.find("the iteration never started: no answer and no busy status within 3s (run.stall_timeout)"),
              std::string::npos)
        << error;
    EXPECT_GE(it.at("ended_at").as_int64() - it.at("started_at").as_int64(), 3000);
    EXPECT_EQ(ReadFile(env.model->log_path).find("\"tools\":true"), std::string::npos) << "the model was reached";
}

TEST(E2ELoopChecks, EmptyOrDirectoryPromptFailsTheRunAsTaskInvalid)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::string empty = env.AddTask(project, "empty", "");
    WriteFile(empty + "/prompt.md", "");
    std::string dir = project + "/tasks/dir";
    std::filesystem::create_directories(dir + "/prompt.md");
    for (auto [task, words] : {std::pair{"empty", "prompt.md is empty"}, std::pair{"dir", "prompt.md is a directory"}}) {
        auto reply = env.Call("run.start", json::object{{"task", task}, {"cwd", project}});
        ASSERT_TRUE(reply.contains("result")) << json::serialize(reply);
        const json::object& run = reply["result"].as_object();
        EXPECT_EQ(run.at("status"), "failed") << task;
        EXPECT_EQ(run.at("reason"), "task_invalid") << task;
        EXPECT_NE(std::string(run.at("error").as_string()).find(words), std::string::npos) << run.at("error");
        EXPECT_EQ(run.at("iteration"), 0) << task;
    }
    EXPECT_EQ(ReadFile(env.model->log_path).find("\"tools\":true"), std::string::npos) << "an empty prompt was sent";
}

TEST(E2ELoopChecks, PromptThatBecomesADirectoryMidRunFailsTheRun)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    // The agent itself replaces the prompt with a directory during iteration 1.
    env.AddTask(project, "t", "BASH:\"rm tasks/t/prompt.md && mkdir tasks/t/prompt.md\"\n");
    auto r = env.Ralph({"run", "t", "-n", "5", "-f"}, project, {}, std::chrono::seconds(150));
    EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
    ASSERT_TRUE(std::filesystem::is_directory(project + "/tasks/t/prompt.md")) << r.out;
    json::value run = env.RalphJson({"show", "t"}, project);
    EXPECT_EQ(run.at("status"), "failed");
    EXPECT_EQ(run.at("reason"), "task_invalid");
    EXPECT_EQ(run.at("iteration"), 1);
    EXPECT_NE(EndMessage(env, run.at("id").as_int64()).find("prompt.md is a directory"), std::string::npos);
}

}  // namespace
}  // namespace ralph::test
