// ralph top without a terminal: per-run wake-ups of followers (RunActivity), and top's model and
// layout (what the screen shows for run.list results and run.event notifications).
#include "client/cmd_top_model.h"
#include "common/clock.h"
#include "daemon/run_activity.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <chrono>

namespace ralph {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

void Poll(asio::io_context& io)
{
    io.restart();
    io.poll();
}

asio::awaitable<void> WaitOnRun(RunActivity& activity, int64_t run, int& wakes)
{
    co_await activity.WaitFor(run, 30s);
    ++wakes;
}

asio::awaitable<void> WaitOnAny(RunActivity& activity, int& wakes)
{
    co_await activity.WaitFor(30s);
    ++wakes;
}

TEST(UnitRunActivity, AFollowerWakesOnlyForItsRunAndAnAllRunsFollowerForEvery)
{
    asio::io_context io;
    FakeClock clock;
    RunActivity activity(io.get_executor(), clock);
    int run1 = 0, run2 = 0, any = 0;
    asio::co_spawn(io, WaitOnRun(activity, 1, run1), asio::detached);
    asio::co_spawn(io, WaitOnRun(activity, 2, run2), asio::detached);
    asio::co_spawn(io, WaitOnAny(activity, any), asio::detached);
    Poll(io);
    EXPECT_EQ(activity.runs_waited_on(), 2u);
    activity.Notify(1);
    Poll(io);
    EXPECT_EQ(run1, 1);
    EXPECT_EQ(run2, 0);
    EXPECT_EQ(any, 1);
    EXPECT_EQ(activity.runs_waited_on(), 1u);  // run 1's entry went with its last waiter
    activity.Notify(3);  // nobody waits on run 3
    Poll(io);
    EXPECT_EQ(run2, 0);
    activity.Notify();  // shutdown: everyone
    Poll(io);
    EXPECT_EQ(run2, 1);
    EXPECT_EQ(activity.runs_waited_on(), 0u);
}

TEST(UnitRunActivity, AWaitEndsAtItsTimeoutWithoutNews)
{
    asio::io_context io;
    FakeClock clock;
    RunActivity activity(io.get_executor(), clock);
    int wakes = 0;
    asio::co_spawn(io, WaitOnRun(activity, 7, wakes), asio::detached);
    Poll(io);
    clock.Advance(29s);
    Poll(io);
    EXPECT_EQ(wakes, 0);
    clock.Advance(1s);
    Poll(io);
    EXPECT_EQ(wakes, 1);
}

json::object RunJson(int64_t id, const std::string& task, const std::string& status, int64_t started_at)
{
    return {{"id", id},           {"task", task},         {"project", "/home/u/proj"}, {"status", status},
            {"reason", nullptr},  {"iteration", 1},       {"max_iterations", 5},       {"started_at", started_at},
            {"ended_at", nullptr}, {"cost", 0.5},         {"stop_requested", nullptr}};
}

json::object List(json::array runs)
{
    return {{"server", json::object{{"state", "running"}, {"mode", "managed"}, {"url", "http://127.0.0.1:4100"},
                                    {"pid", 42}, {"version", "1.18.33"}}},
            {"runs", std::move(runs)}};
}

json::object Note(int64_t run, int64_t id, int64_t at, const std::string& kind, json::object data, int iteration = 1)
{
    return {{"run", run},
            {"event", json::object{{"id", id}, {"at", at}, {"iteration", iteration}, {"kind", kind}, {"data", std::move(data)}}}};
}

constexpr int64_t kNow = 1'800'000'000'000;

TEST(UnitTop, ActiveRunsComeFirstAndTheSelectionFollowsItsRun)
{
    top::Model model;
    model.ApplyList(List({RunJson(3, "done", "completed", kNow - 60000), RunJson(2, "busy", "running", kNow - 5000),
                          RunJson(1, "old", "stopped", kNow - 90000)}));
    auto rows = model.Rows();
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0]->id, 2);
    EXPECT_EQ(rows[1]->id, 3);
    EXPECT_EQ(rows[2]->id, 1);
    EXPECT_EQ(model.Selected(), std::optional<int64_t>(2));
    model.Move(1);
    EXPECT_EQ(model.Selected(), std::optional<int64_t>(3));
    model.Move(10);
    EXPECT_EQ(model.Selected(), std::optional<int64_t>(1));
    // A new active run sorts first; the selection stays on run 1.
    model.ApplyEvent(Note(4, 10, kNow, "run.start", {{"task", "fresh"}, {"max_iterations", 3}}, 0));
    ASSERT_EQ(model.Rows().size(), 4u);
    EXPECT_EQ(model.Rows()[0]->id, 4);
    EXPECT_EQ(model.Selected(), std::optional<int64_t>(1));
}

TEST(UnitTop, StateEventsUpdateTheRowAndUnknownStoriesShowADash)
{
    top::Model model;
    model.ApplyList(List({RunJson(2, "busy", "running", kNow - 5000)}));
    top::View view;
    auto screen = top::Layout(model, view, 80, 24, kNow);
    ASSERT_EQ(screen.lines.size(), 24u);
    ASSERT_GE(screen.selected_row, 0);
    std::string row = screen.lines[static_cast<std::size_t>(screen.selected_row)];
    EXPECT_NE(row.find("busy"), std::string::npos) << row;
    EXPECT_NE(row.find("1/5"), std::string::npos) << row;
    EXPECT_NE(row.find(" - "), std::string::npos) << row;  // STORIES unknown
    EXPECT_NE(row.find("$0.50"), std::string::npos) << row;
    model.ApplyEvent({{"run", 2},
                      {"event", json::object{{"kind", "state"}, {"at", kNow}, {"status", "completed"}, {"reason", "promise"},
                                             {"iteration", 3}, {"stories_passed", 2}, {"stories_total", 4}, {"cost", 1.25}}}});
    const top::RunInfo* run = model.Find(2);
    ASSERT_NE(run, nullptr);
    EXPECT_EQ(run->status, "completed");
    EXPECT_EQ(run->iteration, 3);
    screen = top::Layout(model, view, 80, 24, kNow);
    row = screen.lines[static_cast<std::size_t>(screen.selected_row)];
    EXPECT_NE(row.find("completed"), std::string::npos) << row;
    EXPECT_NE(row.find("2/4"), std::string::npos) << row;
    EXPECT_NE(row.find("$1.25"), std::string::npos) << row;
}

TEST(UnitTop, WaitingStoppingAndPausingShowInTheStatus)
{
    top::RunInfo run;
    run.status = "running";
    EXPECT_EQ(top::StatusCell(run, kNow), "running");
    run.stop_requested = "after_iteration";
    EXPECT_EQ(top::StatusCell(run, kNow), "stopping");
    run.stop_requested.clear();
    run.pause_requested = true;
    EXPECT_EQ(top::StatusCell(run, kNow), "pausing");
    run.waiting_until = kNow + 60000;
    EXPECT_EQ(top::StatusCell(run, kNow).rfind("waiting ", 0), 0u);
    run.waiting_until.reset();
    run.pause_requested = false;
    run.status = "queued";
    EXPECT_EQ(top::StatusCell(run, kNow), "queued");
}

TEST(UnitTop, TheSelectedRunsLogIsLiveAndTheLastActivityShown)
{
    top::Model model;
    model.ApplyList(List({RunJson(2, "busy", "running", kNow - 5000)}));
    model.SetLog(2, json::array{json::object{{"id", 1}, {"at", kNow - 4000}, {"iteration", 0}, {"kind", "run.start"},
                                             {"data", json::object{{"task", "busy"}, {"max_iterations", 5}}}}});
    model.ApplyEvent(Note(2, 2, kNow - 2000, "tool", {{"tool", "bash"}, {"title", "make test"}}));
    ASSERT_EQ(model.Log(2).size(), 2u);
    EXPECT_NE(model.Log(2).back().find("tool bash"), std::string::npos) << model.Log(2).back();
    top::View view;
    auto screen = top::Layout(model, view, 120, 24, kNow);
    std::string row = screen.lines[static_cast<std::size_t>(screen.selected_row)];
    EXPECT_NE(row.find("2s ago tool bash: make test"), std::string::npos) << row;
    ASSERT_GE(screen.log_title_row, 0);
    bool shown = false;
    for (const auto& line : screen.lines) shown = shown || line.find("run started: task busy") != std::string::npos;
    EXPECT_TRUE(shown);
    // The whole log: the title, then the lines.
    view.full_log = true;
    screen = top::Layout(model, view, 80, 24, kNow);
    EXPECT_NE(screen.lines[1].find("run 2"), std::string::npos) << screen.lines[1];
}

TEST(UnitTop, EveryLineFitsAnySizeAndTheStatusLineIsLast)
{
    top::Model model;
    json::array runs;
    for (int i = 1; i <= 30; ++i)
        runs.push_back(RunJson(i, "a-rather-long-task-name-" + std::to_string(i), i % 2 ? "running" : "failed", kNow - i * 1000));
    model.ApplyList(List(std::move(runs)));
    model.Move(25);
    top::View view;
    view.message = "pause needs ralphd support: not in this version";
    for (auto [w, h] : {std::pair{80, 24}, {120, 40}, {40, 10}, {20, 5}, {1, 1}}) {
        auto screen = top::Layout(model, view, w, h, kNow);
        ASSERT_EQ(screen.lines.size(), static_cast<std::size_t>(h)) << w << "x" << h;
        for (const auto& line : screen.lines) EXPECT_EQ(line.size(), static_cast<std::size_t>(w)) << line;
        if (h > 1) {
            EXPECT_EQ(screen.lines.back().rfind("pause needs", 0), 0u) << screen.lines.back();
        }
        if (h >= 10) {
            EXPECT_GE(screen.selected_row, 0) << w << "x" << h;  // scrolled into view
        }
    }
    view.disconnected = true;
    auto screen = top::Layout(model, view, 80, 24, kNow);
    ASSERT_FALSE(screen.lines.empty());
    EXPECT_NE(screen.lines[0].find("ralphd is not answering"), std::string::npos) << screen.lines[0];
    view.starting = true;  // it answers again, still warming up
    screen = top::Layout(model, view, 80, 24, kNow);
    ASSERT_FALSE(screen.lines.empty());
    EXPECT_NE(screen.lines[0].find("ralphd is starting"), std::string::npos) << screen.lines[0];
}

TEST(UnitTop, FitCountsCharactersNotBytes)
{
    EXPECT_EQ(top::Fit("héllo", 3), "hél");
    EXPECT_EQ(top::Fit("ab", 4), "ab  ");
    EXPECT_EQ(top::Fit("abc", 0), "");
}

}  // namespace
}  // namespace ralph
