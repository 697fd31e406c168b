// Tool results in `ralph logs` end to end: the real opencode runs the scripted model's bash and
// write calls, ralphd records what they did, and ralph prints it (exit status, last output lines,
// lines written; --verbose for the whole output).
#include "tests/harness.h"

#include <gtest/gtest.h>

namespace ralph::test {
namespace {

namespace json = boost::json;

const json::object* ToolEvent(const json::value& events, const std::string& title_part, const std::string& output_part)
{
    for (const json::value& e : events.at("events").as_array()) {
        if (e.at("kind") != "tool") continue;
        const json::object& data = e.at("data").as_object();
        auto* out = data.if_contains("output");
        if (out && out->is_string() && std::string(out->as_string()).find(output_part) != std::string::npos &&
            std::string(data.at("tool").as_string()).find(title_part) != std::string::npos)
            return &data;
    }
    return nullptr;
}

TEST(E2EToolResults, LogsShowExitStatusAndOutputOfAPassingAndAFailingBashCommand)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "tools",
                "BASH:\"seq 1 8; echo all-good\" BASH:\"echo boom-output; exit 3\" "
                "WRITE:notes.txt=\"one\\ntwo\\nthree\\n\" PROMISE\n");
    auto run = env.Ralph({"run", "tools", "-n", "1", "-f"}, project);
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err << env.DaemonStderr();

    auto logs = env.Ralph({"logs", "tools"}, project);
    ASSERT_EQ(logs.exit_code, 0) << logs.err;
    EXPECT_NE(logs.out.find("(exit 0)"), std::string::npos) << logs.out;
    EXPECT_NE(logs.out.find("(exit 3)"), std::string::npos) << logs.out;
    EXPECT_NE(logs.out.find("| boom-output"), std::string::npos) << logs.out;
    // The passing command printed 9 lines: the last 5 are shown, the rest counted.
    EXPECT_NE(logs.out.find("| all-good"), std::string::npos) << logs.out;
    EXPECT_NE(logs.out.find("| 5\n"), std::string::npos) << logs.out;
    EXPECT_EQ(logs.out.find("| 4\n"), std::string::npos) << logs.out;
    EXPECT_NE(logs.out.find("(4 earlier lines; --verbose shows them)"), std::string::npos) << logs.out;
    EXPECT_NE(logs.out.find("tool write: notes.txt (+3 -0)"), std::string::npos) << logs.out;

    auto verbose = env.Ralph({"logs", "tools", "--verbose"}, project);
    ASSERT_EQ(verbose.exit_code, 0) << verbose.err;
    EXPECT_NE(verbose.out.find("| 1\n"), std::string::npos) << verbose.out;
    EXPECT_NE(verbose.out.find("| 4\n"), std::string::npos) << verbose.out;
    EXPECT_EQ(verbose.out.find("earlier lines"), std::string::npos) << verbose.out;

    // The recorded events carry the facts for --json readers.
    json::value events = env.RalphJson({"logs", "tools"}, project);
    const json::object* failed = ToolEvent(events, "bash", "boom-output");
    ASSERT_NE(failed, nullptr) << json::serialize(events);
    EXPECT_EQ(failed->at("exit"), 3);
    const json::object* passed = ToolEvent(events, "bash", "all-good");
    ASSERT_NE(passed, nullptr) << json::serialize(events);
    EXPECT_EQ(passed->at("exit"), 0);
}

TEST(E2EToolResults, FollowingLogsShowsTheResultsAsTheyCome)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "fails", "BASH:\"echo not-found-here >&2; exit 127\" PROMISE\n");
    auto run = env.Ralph({"run", "fails", "-n", "1", "-f"}, project);
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err << env.DaemonStderr();
    EXPECT_NE(run.out.find("(exit 127)"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("| not-found-here"), std::string::npos) << run.out;
}

TEST(E2EToolResults, ACommandKilledByStopNowIsShownAsKilled)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "sleeps", "BASH:\"echo before-sleep; touch started.flag; sleep 60\"\n");
    json::value run = env.RalphJson({"run", "sleeps", "-n", "1"}, project);
    int64_t id = run.at("id").as_int64();
    ASSERT_TRUE(WaitFor([&] { return PathExists(project + "/started.flag"); }, std::chrono::seconds(60)))
        << env.DaemonStderr();
    auto stop = env.Ralph({"stop", std::to_string(id), "--now"}, project);
    ASSERT_EQ(stop.exit_code, 0) << stop.err;
    json::object ended = env.WaitRunEnd(id);
    EXPECT_EQ(ended.at("status"), "stopped") << json::serialize(ended);
    auto logs = env.Ralph({"logs", std::to_string(id)}, project);
    ASSERT_EQ(logs.exit_code, 0) << logs.err;
    EXPECT_NE(logs.out.find("(killed: User aborted the command)"), std::string::npos) << logs.out;
    EXPECT_EQ(logs.out.find("shell_metadata"), std::string::npos) << logs.out;
    EXPECT_NE(logs.out.find("| before-sleep"), std::string::npos) << logs.out;
}

}  // namespace
}  // namespace ralph::test
