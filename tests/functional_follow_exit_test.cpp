// Exit codes and output of `ralph run` and `ralph logs` for runs that end before any iteration
// (SPEC §11): the real ralphd and ralph, no opencode needed (its binary is missing on purpose).
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <sstream>

namespace ralph::test {
namespace {

namespace json = boost::json;

/// A daemon whose opencode binary does not exist, and a project outside git at dir/plain.
struct NoOpencode {
    TestEnv env;
    std::string project;
    NoOpencode()
    {
        env.env["RALPH_OPENCODE"] = env.dir + "/bin/opencode";  // never created
        project = env.dir + "/plain";
        env.StartDaemon();
    }
    void AddTask(const std::string& name, const std::string& prd_json = "")
    {
        WriteFile(project + "/tasks/" + name + "/prompt.md", "TEXTONLY\n");
        if (!prd_json.empty()) WriteFile(project + "/tasks/" + name + "/prd.json", prd_json);
    }
    json::array Runs()
    {
        auto reply = env.Call("run.list", json::object{{"all", true}});
        EXPECT_TRUE(reply.contains("result")) << json::serialize(reply);
        return reply.contains("result") ? reply.at("result").at("runs").as_array() : json::array{};
    }
};

TEST(FunctionalFollowExit, RunOfARunThatFailsAtOnceSaysHowItEndedAndExitsFive)
{
    NoOpencode t;
    t.AddTask("t");
    auto r = t.env.Ralph({"run", "t"}, t.project);
    EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
    EXPECT_EQ(r.out.find("started"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("ended at once: failed (server_unavailable)"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(t.env.dir + "/bin/opencode"), std::string::npos) << "the reason names the binary: " << r.err;

    auto json_run = t.env.Ralph({"--json", "run", "t"}, t.project);
    EXPECT_EQ(json_run.exit_code, 5) << json_run.err;
    json::value run = json::parse(json_run.out);
    EXPECT_EQ(run.at("status"), "failed");
    EXPECT_EQ(run.at("reason"), "server_unavailable");
}

TEST(FunctionalFollowExit, BrokenPrdExitsFiveWithAndWithoutFollow)
{
    NoOpencode t;
    t.AddTask("broken", "{\n  \"userStories\": [\n    {\"id\": 1,,}\n  ]\n}\n");
    auto r = t.env.Ralph({"run", "broken"}, t.project);
    EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
    EXPECT_NE(r.err.find("failed (task_invalid)"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("line 3"), std::string::npos) << r.err;

    r = t.env.Ralph({"run", "broken", "-f"}, t.project);
    EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
    EXPECT_NE(r.out.find("run failed (task_invalid)"), std::string::npos) << r.out;

    r = t.env.Ralph({"logs", "broken", "-f"}, t.project);
    EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
}

TEST(FunctionalFollowExit, RunOfAnAlreadyCompletePrdSaysSoAndExitsZero)
{
    NoOpencode t;
    t.AddTask("done", R"({"userStories": [{"id": "US-001", "title": "one", "passes": true}]})");
    auto r = t.env.Ralph({"run", "done"}, t.project);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("ended at once: completed (prd_complete)"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("started"), std::string::npos) << r.out;
}

TEST(FunctionalFollowExit, NoRunMadeExitsOneWithTheReasonAndCreatesNoRun)
{
    NoOpencode t;
    t.AddTask("t");
    auto r = t.env.Ralph({"run", "nope"}, t.project);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
    EXPECT_TRUE(t.Runs().empty());
}

TEST(FunctionalFollowExit, FollowJsonIsOneObjectPerLineEventsStateThenTheRun)
{
    NoOpencode t;
    t.AddTask("broken", "{ not json\n");
    auto r = t.env.Ralph({"--json", "run", "broken", "-f"}, t.project);
    EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
    auto lines = JsonLines(r.out);
    ASSERT_GE(lines.size(), 4u) << r.out;
    EXPECT_EQ(lines.front().at("kind"), "run.start") << r.out;
    bool saw_end = false, saw_failed_state = false;
    for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
        ASSERT_TRUE(lines[i].contains("kind")) << "every line before the last is an event: " << r.out;
        if (lines[i].at("kind") == "run.end") saw_end = true;
        if (lines[i].at("kind") == "state" && lines[i].at("status") == "failed") saw_failed_state = true;
    }
    EXPECT_TRUE(saw_end) << r.out;
    EXPECT_TRUE(saw_failed_state) << r.out;
    const json::object& run = lines.back();
    EXPECT_FALSE(run.contains("kind")) << r.out;
    EXPECT_EQ(run.at("status"), "failed");
    EXPECT_EQ(run.at("reason"), "task_invalid");

    // logs -f --json of the ended run: the same shape.
    auto logs = t.env.Ralph({"--json", "logs", "broken", "-f"}, t.project);
    EXPECT_EQ(logs.exit_code, 5) << logs.err;
    auto again = JsonLines(logs.out);
    ASSERT_GE(again.size(), 2u) << logs.out;
    EXPECT_EQ(again.front().at("kind"), "run.start");
    EXPECT_EQ(again.back().at("status"), "failed");
}

TEST(FunctionalFollowExit, LogsOfAnIterationARunNeverHadIsAnError)
{
    NoOpencode t;
    t.AddTask("broken", "{ not json\n");
    EXPECT_EQ(t.env.Ralph({"run", "broken"}, t.project).exit_code, 5);
    auto r = t.env.Ralph({"logs", "broken", "--iteration", "1"}, t.project);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("has no iterations yet; there is no iteration 1"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace
}  // namespace ralph::test
