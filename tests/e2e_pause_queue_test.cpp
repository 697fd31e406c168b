// SPEC §7, §8 pause, resume and the queue, end to end through the real ralph, ralphd, opencode
// 1.18.33 and the scripted model: a pause after the iteration and with --now, resume, a paused run
// that stays paused across kill -9 of ralphd, stop on a paused and on a queued run, and
// `max_running = 2` with five runs: two run, three queue, all finish in order.
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace ralph::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

json::object GetRun(E2EEnv& env, int64_t id)
{
    auto reply = env.Call("run.get", json::object{{"run", id}});
    EXPECT_TRUE(reply.contains("result")) << json::serialize(reply);
    if (!reply.contains("result")) return {};
    return reply["result"].as_object();
}

std::string Status(E2EEnv& env, int64_t id)
{
    json::object run = GetRun(env, id);
    return run.contains("status") ? std::string(run.at("status").as_string()) : "";
}

/// Waits until the run's iteration `n` has begun.
bool WaitIteration(E2EEnv& env, int64_t id, int n, std::chrono::seconds timeout = 90s)
{
    return WaitFor([&] { return GetRun(env, id).at("iteration").as_int64() >= n; }, timeout);
}

TEST(E2EPause, PauseAfterTheIterationThenResumeGoesOn)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "BASH:\"sleep 3\"\n");
    json::value started = env.RalphJson({"run", "t", "-n", "2"}, project);
    const int64_t id = started.at("id").as_int64();
    ASSERT_TRUE(WaitIteration(env, id, 1));
    json::value paused = env.RalphJson({"pause", std::to_string(id)}, project);
    EXPECT_EQ(paused.at("changed"), true) << json::serialize(paused);
    EXPECT_EQ(paused.at("status"), "running");  // it will pause: true when said
    EXPECT_EQ(paused.at("pause_requested"), true);
    ASSERT_TRUE(WaitFor([&] { return Status(env, id) == "paused"; }, 90s)) << json::serialize(GetRun(env, id));
    json::object run = GetRun(env, id);
    ASSERT_EQ(run.at("iterations").as_array().size(), 1u) << json::serialize(run);
    EXPECT_EQ(run.at("iterations").as_array()[0].at("outcome"), "continue");  // it was let finish
    EXPECT_EQ(run.at("pause_requested"), false);
    auto status = env.Ralph({"status"}, project);
    EXPECT_NE(status.out.find("paused"), std::string::npos) << status.out;
    // Pausing again changes nothing and says so.
    auto again = env.Ralph({"pause", std::to_string(id)}, project);
    EXPECT_EQ(again.exit_code, 0);
    EXPECT_NE(again.out.find("paused already"), std::string::npos) << again.out;

    auto resumed = env.Ralph({"resume", std::to_string(id)}, project);
    EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_NE(resumed.out.find("goes on"), std::string::npos) << resumed.out;
    json::object ended = env.WaitRunEnd(id);
    EXPECT_EQ(ended.at("status"), "stopped") << json::serialize(ended);
    EXPECT_EQ(ended.at("reason"), "max_iterations");
    EXPECT_EQ(ended.at("iterations").as_array().size(), 2u);
}

TEST(E2EPause, PauseNowAbortsTheIterationAndStaysPausedAcrossAKilledDaemon)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "t", "BASH:\"sleep 300\"\n");
    json::value started = env.RalphJson({"run", "t", "-n", "3"}, project);
    const int64_t id = started.at("id").as_int64();
    ASSERT_TRUE(WaitIteration(env, id, 1));
    ASSERT_TRUE(WaitFor([&] { return ReadFile(env.model->log_path).find("\"tool-calls\"") != std::string::npos; }, 60s));
    auto paused = env.Ralph({"pause", std::to_string(id), "--now"}, project);
    EXPECT_EQ(paused.exit_code, 0) << paused.err;
    ASSERT_TRUE(WaitFor([&] { return Status(env, id) == "paused"; }, 90s)) << json::serialize(GetRun(env, id));
    json::object run = GetRun(env, id);
    ASSERT_EQ(run.at("iterations").as_array().size(), 1u);
    EXPECT_EQ(run.at("iterations").as_array()[0].at("outcome"), "aborted");

    env.KillDaemon();
    env.StartDaemon();
    // Once ralphd answers run.list it has picked up what it found: the run is still paused.
    ASSERT_TRUE(WaitFor([&] { return env.Call("run.list").contains("result"); }, 60s));
    EXPECT_EQ(Status(env, id), "paused");
    EXPECT_EQ(GetRun(env, id).at("iterations").as_array().size(), 1u);

    auto stopped = env.Ralph({"stop", std::to_string(id)}, project);
    EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
    json::object ended = GetRun(env, id);
    EXPECT_EQ(ended.at("status"), "stopped") << json::serialize(ended);
    EXPECT_EQ(ended.at("reason"), "user");
    // A terminal run cannot be resumed.
    auto resumed = env.Ralph({"resume", std::to_string(id)}, project);
    EXPECT_NE(resumed.out.find("not paused"), std::string::npos) << resumed.out;
    EXPECT_EQ(Status(env, id), "stopped");
}

TEST(E2EQueue, MaxRunningTwoRunsTwoAndQueuesThreeThatFinishInOrder)
{
    E2EEnv env(true, "[daemon]\nmax_running = 2\n");
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::vector<int64_t> ids;
    for (int i = 1; i <= 5; ++i) {
        std::string task = "t" + std::to_string(i);
        env.AddTask(project, task, "BASH:\"sleep 2\"\n");
        json::value run = env.RalphJson({"run", task, "-n", "2", "--no-worktree"}, project);
        ids.push_back(run.at("id").as_int64());
        EXPECT_EQ(run.at("status"), i <= 2 ? "running" : "queued") << json::serialize(run);
        if (i > 2) {
            EXPECT_TRUE(run.at("queued_at").is_int64());
        }
    }
    // A queued run is active: its task cannot start a second one.
    auto twice = env.Call("run.start", json::object{{"task", "t3"}, {"cwd", project}});
    ASSERT_TRUE(twice.contains("error")) << json::serialize(twice);
    EXPECT_EQ(twice["error"].at("code"), -32005);
    // Stop on a queued run ends it at once, with no iteration.
    auto stopped = env.Ralph({"stop", std::to_string(ids[4])}, project);
    EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
    json::object fifth = GetRun(env, ids[4]);
    EXPECT_EQ(fifth.at("status"), "stopped");
    EXPECT_EQ(fifth.at("reason"), "user");
    EXPECT_EQ(fifth.at("iterations").as_array().size(), 0u);

    struct Span {
        int64_t start, end;
    };
    std::vector<Span> spans;
    for (int i = 0; i < 4; ++i) {
        json::object run = env.WaitRunEnd(ids[i], 240s);
        EXPECT_EQ(run.at("status"), "stopped") << json::serialize(run);
        EXPECT_EQ(run.at("reason"), "max_iterations");
        const json::array& its = run.at("iterations").as_array();
        ASSERT_EQ(its.size(), 2u) << json::serialize(run);
        spans.push_back({its[0].at("started_at").as_int64(), run.at("ended_at").as_int64()});
    }
    // Never more than two at once, and the queue went in order: run 3 began only after one of the
    // first two ended, run 4 after two of the three before it.
    for (const Span& s : spans) {
        int overlapping = 0;
        for (const Span& o : spans) overlapping += o.start <= s.start && s.start < o.end;
        EXPECT_LE(overlapping, 2);
    }
    EXPECT_GE(spans[2].start, std::min(spans[0].end, spans[1].end));
    std::vector<int64_t> ends = {spans[0].end, spans[1].end, spans[2].end};
    std::sort(ends.begin(), ends.end());
    EXPECT_GE(spans[3].start, ends[1]);
    EXPECT_LE(spans[2].start, spans[3].start);
}

TEST(E2EQueue, APausedRunGivesItsPlaceAndResumesIntoTheQueue)
{
    E2EEnv env(true, "[daemon]\nmax_running = 1\n");
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "a", "BASH:\"sleep 2\"\n");
    env.AddTask(project, "b", "BASH:\"sleep 2\"\n");
    int64_t a = env.RalphJson({"run", "a", "-n", "2", "--no-worktree"}, project).at("id").as_int64();
    json::value b_run = env.RalphJson({"run", "b", "-n", "2", "--no-worktree"}, project);
    int64_t b = b_run.at("id").as_int64();
    EXPECT_EQ(b_run.at("status"), "queued");
    ASSERT_TRUE(WaitIteration(env, a, 1));
    env.Ralph({"pause", std::to_string(a)}, project);
    // a pauses after its iteration; b takes its place.
    ASSERT_TRUE(WaitFor([&] { return Status(env, a) == "paused" && Status(env, b) == "running"; }, 90s));
    json::value resumed = env.RalphJson({"resume", std::to_string(a)}, project);
    EXPECT_EQ(resumed.at("status"), "queued") << json::serialize(resumed);  // b holds the one place
    EXPECT_EQ(env.WaitRunEnd(b, 120s).at("reason"), "max_iterations");
    json::object ended = env.WaitRunEnd(a, 120s);
    EXPECT_EQ(ended.at("reason"), "max_iterations") << json::serialize(ended);
    EXPECT_EQ(ended.at("iterations").as_array().size(), 2u);
}

TEST(E2EQueue, AQueuedRunStaysQueuedAcrossAKilledDaemonAndStartsWhenAPlaceFrees)
{
    E2EEnv env(true, "[daemon]\nmax_running = 1\n");
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "a", "BASH:\"sleep 300\"\n");
    env.AddTask(project, "b", "TEXTONLY\n");
    int64_t a = env.RalphJson({"run", "a", "-n", "5", "--no-worktree"}, project).at("id").as_int64();
    int64_t b = env.RalphJson({"run", "b", "-n", "1", "--no-worktree"}, project).at("id").as_int64();
    ASSERT_EQ(Status(env, b), "queued");
    env.KillDaemon();
    env.StartDaemon();
    ASSERT_TRUE(WaitFor([&] { return env.Call("run.list").contains("result"); }, 60s));
    EXPECT_EQ(Status(env, b), "queued");  // a is running again and holds the one place
    ASSERT_TRUE(WaitFor([&] { return Status(env, a) == "running"; }, 30s)) << Status(env, a);
    EXPECT_EQ(Status(env, b), "queued");
    auto stopped = env.Ralph({"stop", std::to_string(a), "--now"}, project);
    EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
    json::object ended = env.WaitRunEnd(b, 120s);
    EXPECT_EQ(ended.at("reason"), "max_iterations") << json::serialize(ended);
    EXPECT_EQ(ended.at("iterations").as_array().size(), 1u);
}

}  // namespace
}  // namespace ralph::test
