// The iteration's logic (daemon/iteration.*) replayed on event streams recorded from the real
// opencode 1.18.33 with the scripted model (tests/data/iteration/, re-recorded with
// scripts/record-streams), on a fake clock: each outcome, and each trap (permission, question,
// stop --now, timeout, stall, server loss, shutdown).
#include "common/clock.h"
#include "common/json_util.h"
#include "daemon/iteration.h"

#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace ralph {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using Kind = IterationAction::Kind;

struct TimedEvent {
    Millis t;  ///< since the prompt was sent
    json::object event;
};

struct Recording {
    std::vector<TimedEvent> events;
    std::optional<json::value> messages;  ///< absent when the server went away
};

Recording Load(const std::string& name)
{
    Recording r;
    const std::string base = std::string(RALPH_SOURCE_DIR) + "/tests/data/iteration/" + name;
    std::ifstream events(base + ".events.jsonl");
    EXPECT_TRUE(events) << "no recording " << base << ".events.jsonl";
    for (std::string line; std::getline(events, line);) {
        if (line.empty()) continue;
        json::value v = json::parse(line);
        // As the stream hands them over: types the iteration does not read are dropped unparsed.
        if (!IterationMachine::Reads(Str(At(v, "event", "type")))) continue;
        r.events.push_back({Millis(Int(At(v, "t"))), v.at("event").as_object()});
    }
    if (std::ifstream messages(base + ".messages.json"); messages) {
        std::stringstream text;
        text << messages.rdbuf();
        r.messages = json::parse(text.str());
    }
    return r;
}

IterationMachine::Settings Settings(Millis iteration_timeout = 30min, Millis stall_timeout = 60s)
{
    return {iteration_timeout, stall_timeout, "/tmp/project", "COMPLETE", {}, {}};
}

/// What LoopEngine::Iterate does around the machine, with the fake clock instead of waiting.
class Replay {
public:
    explicit Replay(IterationMachine::Settings settings = Settings()) : start_(clock.Now()), machine(settings, start_) {}

    /// Feeds events [from, to) at their recorded times, checking after each batch (the events of
    /// one instant) and at every wake-up in between, as the shell does.
    void Feed(const std::vector<TimedEvent>& events, std::size_t from, std::size_t to)
    {
        for (std::size_t i = from; i < to && !finished && !machine.done_waiting(clock.Now()); ++i) {
            AdvanceTo(start_ + events[i].t);
            if (finished || machine.done_waiting(clock.Now())) break;
            Perform(machine.OnEvent(events[i].event, clock.Now()));
            const bool batch_ends = i + 1 == to || events[i + 1].t != events[i].t;
            if (batch_ends && !machine.idle()) Perform(machine.Check(around, clock.Now()));
        }
    }
    void FeedAll(const Recording& r) { Feed(r.events, 0, r.events.size()); }

    /// Time passes without events: the shell wakes at WakeAt() and checks.
    void AdvanceTo(Clock::TimePoint when)
    {
        while (!finished && !machine.done_waiting(clock.Now()) && machine.WakeAt(clock.Now()) <= when) {
            clock.Advance(machine.WakeAt(clock.Now()) - clock.Now());
            Perform(machine.Check(around, clock.Now()));
        }
        if (when > clock.Now()) clock.Advance(when - clock.Now());
    }
    void AdvanceBy(Clock::Duration d) { AdvanceTo(clock.Now() + d); }

    /// The end: the outcome from the messages (or from what was decided before).
    IterationOutcome Conclude(const json::value& messages)
    {
        if (!finished) Perform(machine.Conclude(messages));
        EXPECT_TRUE(finished.has_value());
        return finished.value_or(IterationOutcome{});
    }

    void Perform(IterationActions list)
    {
        for (IterationAction& a : list) {
            if (a.kind == Kind::Abort) machine.AbortSent(clock.Now());
            if (a.kind == Kind::Finish) finished = a.outcome;
            actions.push_back(std::move(a));
        }
    }

    std::vector<const IterationAction*> Of(Kind kind, const std::string& log_kind = "") const
    {
        std::vector<const IterationAction*> out;
        for (const IterationAction& a : actions)
            if (a.kind == kind && (log_kind.empty() || a.log_kind == log_kind)) out.push_back(&a);
        return out;
    }
    std::vector<std::string> Notes() const
    {
        std::vector<std::string> out;
        for (const IterationAction* a : Of(Kind::Log, "note")) out.push_back(Str(a->data.if_contains("message")));
        return out;
    }

    FakeClock clock;
    Clock::TimePoint start_;
    IterationMachine machine;
    IterationMachine::Surroundings around;
    std::vector<IterationAction> actions;
    std::optional<IterationOutcome> finished;
};

/// Index of the first event of `type` whose part (if any) is a running tool; events.size() if none.
std::size_t FirstRunningTool(const std::vector<TimedEvent>& events)
{
    for (std::size_t i = 0; i < events.size(); ++i) {
        const json::value v = events[i].event;
        if (Str(At(v, "properties", "part", "type")) == "tool" && Str(At(v, "properties", "part", "state", "status")) == "running")
            return i;
    }
    return events.size();
}

TEST(UnitIteration, PromiseCompletesWithTokensAndTheTextLogged)
{
    Recording r = Load("promise");
    ASSERT_TRUE(r.messages);
    Replay replay;
    replay.FeedAll(r);
    EXPECT_TRUE(replay.machine.idle());
    IterationOutcome out = replay.Conclude(*r.messages);
    EXPECT_EQ(out.outcome, OutcomeName::kComplete);
    EXPECT_TRUE(out.promise);
    EXPECT_EQ(out.error, "");
    EXPECT_GT(out.tokens_in, 0);
    EXPECT_GT(out.tokens_out, 0);
    auto texts = replay.Of(Kind::Log, "text");
    ASSERT_EQ(texts.size(), 1u);
    EXPECT_NE(Str(texts[0]->data.if_contains("text")).find("<promise>COMPLETE</promise>"), std::string::npos);
    EXPECT_TRUE(replay.Of(Kind::Abort).empty());
    EXPECT_TRUE(replay.Of(Kind::Log, "error").empty());
}

TEST(UnitIteration, ToolCallsAreLoggedOnceEachWithWhatTheyDid)
{
    Recording r = Load("tools");
    ASSERT_TRUE(r.messages);
    Replay replay;
    replay.FeedAll(r);
    IterationOutcome out = replay.Conclude(*r.messages);
    EXPECT_EQ(out.outcome, OutcomeName::kContinue);
    EXPECT_FALSE(out.promise);
    auto tools = replay.Of(Kind::Log, "tool");
    ASSERT_EQ(tools.size(), 2u);
    std::map<std::string, const json::object*> by_tool;
    for (const IterationAction* a : tools) by_tool[Str(a->data.if_contains("tool"))] = &a->data;
    ASSERT_TRUE(by_tool.count("write") && by_tool.count("bash"));
    EXPECT_EQ(Int(by_tool["bash"]->if_contains("exit")), 3);
    EXPECT_NE(Str(by_tool["bash"]->if_contains("output")).find("out"), std::string::npos);
    EXPECT_EQ(Str(by_tool["write"]->if_contains("status")), "completed");
    // Both answers' texts, each once, from the events (nothing left for the messages to add).
    EXPECT_EQ(replay.Of(Kind::Log, "text").size(), 2u);
}

TEST(UnitIteration, QuietToolCallLongerThanTheStallTimeoutIsNotEnded)
{
    Recording r = Load("tools");
    ASSERT_TRUE(r.messages);
    Replay replay(Settings(30min, 200ms));  // busy at 114 ms, then quiet gaps of 460 ms: no stall
    replay.FeedAll(r);
    IterationOutcome out = replay.Conclude(*r.messages);
    EXPECT_EQ(out.outcome, OutcomeName::kContinue);
    EXPECT_TRUE(replay.Of(Kind::Abort).empty());
}

TEST(UnitIteration, Http401IsAnErrorWithOpencodesMessage)
{
    Recording r = Load("http401");
    ASSERT_TRUE(r.messages);
    Replay replay;
    replay.FeedAll(r);
    IterationOutcome out = replay.Conclude(*r.messages);
    EXPECT_EQ(out.outcome, OutcomeName::kError);
    EXPECT_EQ(out.error, "APIError: Incorrect API key provided");
    EXPECT_FALSE(out.promise);
    auto errors = replay.Of(Kind::Log, "error");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(Str(errors[0]->data.if_contains("message")), out.error);
    EXPECT_TRUE(replay.Notes().empty());
}

TEST(UnitIteration, RetryLadderNotesEachAttemptAndEndsInTheError)
{
    Recording r = Load("retry500");
    ASSERT_TRUE(r.messages);
    Replay replay(Settings(30min, 20s));  // retries are work: gaps longer than the stall timeout do not stall
    replay.FeedAll(r);
    IterationOutcome out = replay.Conclude(*r.messages);
    EXPECT_EQ(out.outcome, OutcomeName::kError);
    EXPECT_NE(out.error.find("fake upstream exploded"), std::string::npos) << out.error;
    std::vector<std::string> notes = replay.Notes();
    ASSERT_EQ(notes.size(), 5u);
    for (std::size_t i = 0; i < notes.size(); ++i) {
        EXPECT_EQ(notes[i], "the model failed and opencode retries (attempt " + std::to_string(i + 1) +
                                "): fake upstream exploded");
    }
    EXPECT_TRUE(replay.Of(Kind::Abort).empty());
}

TEST(UnitIteration, PermissionRequestIsRejectedAndTheIterationGoesOn)
{
    Recording r = Load("permission");
    ASSERT_TRUE(r.messages);
    std::string asked;
    for (const TimedEvent& e : r.events)
        if (Str(e.event.if_contains("type")) == "permission.asked") asked = Str(At(json::value(e.event), "properties", "id"));
    ASSERT_FALSE(asked.empty());
    Replay replay;
    replay.FeedAll(r);
    auto rejected = replay.Of(Kind::RejectPermission);
    ASSERT_EQ(rejected.size(), 1u);
    EXPECT_EQ(rejected[0]->request_id, asked);
    ASSERT_EQ(replay.Notes().size(), 1u);
    EXPECT_EQ(replay.Notes()[0], "rejected a permission request (external_directory) since the loop runs unattended");
    EXPECT_EQ(replay.Conclude(*r.messages).outcome, OutcomeName::kContinue);
}

TEST(UnitIteration, QuestionIsRejectedAndTheIterationGoesOn)
{
    Recording r = Load("question");
    ASSERT_TRUE(r.messages);
    std::string asked;
    for (const TimedEvent& e : r.events)
        if (Str(e.event.if_contains("type")) == "question.asked") asked = Str(At(json::value(e.event), "properties", "id"));
    ASSERT_FALSE(asked.empty());
    Replay replay;
    replay.FeedAll(r);
    auto rejected = replay.Of(Kind::RejectQuestion);
    ASSERT_EQ(rejected.size(), 1u);
    EXPECT_EQ(rejected[0]->request_id, asked);
    ASSERT_EQ(replay.Notes().size(), 1u);
    EXPECT_EQ(replay.Notes()[0], "rejected a question since the loop runs unattended");
    EXPECT_TRUE(replay.Of(Kind::RejectPermission).empty());
    EXPECT_EQ(replay.Conclude(*r.messages).outcome, OutcomeName::kContinue);
}

TEST(UnitIteration, StopNowAbortsAndOurOwnAbortIsNoError)
{
    Recording r = Load("abort");
    ASSERT_TRUE(r.messages);
    const std::size_t running = FirstRunningTool(r.events);
    ASSERT_LT(running, r.events.size());
    Replay replay;
    replay.Feed(r.events, 0, running + 1);
    EXPECT_TRUE(replay.Of(Kind::Abort).empty());
    replay.around.stop_now = true;
    replay.Perform(replay.machine.Check(replay.around, replay.clock.Now()));
    ASSERT_EQ(replay.Of(Kind::Abort).size(), 1u);
    ASSERT_EQ(replay.Notes().size(), 1u);
    EXPECT_EQ(replay.Notes()[0], "stopped at once by ralph stop --now");
    replay.Feed(r.events, running + 1, r.events.size());
    EXPECT_TRUE(replay.machine.idle());
    IterationOutcome out = replay.Conclude(*r.messages);
    EXPECT_EQ(out.outcome, OutcomeName::kAborted);
    EXPECT_EQ(out.error, "stopped at once by ralph stop --now");
    EXPECT_EQ(replay.Of(Kind::Abort).size(), 1u);      // asked once
    EXPECT_TRUE(replay.Of(Kind::Log, "error").empty());  // MessageAbortedError is ours
}

TEST(UnitIteration, IterationTimeoutAbortsOnTheFakeClock)
{
    Recording r = Load("abort");
    ASSERT_TRUE(r.messages);
    const std::size_t running = FirstRunningTool(r.events);
    ASSERT_LT(running, r.events.size());
    Replay replay(Settings(Millis(r.events[running].t + 100ms)));
    replay.Feed(r.events, 0, running + 1);
    EXPECT_TRUE(replay.Of(Kind::Abort).empty());
    replay.AdvanceBy(100ms);  // the deadline: the shell wakes and aborts
    ASSERT_EQ(replay.Of(Kind::Abort).size(), 1u);
    replay.Feed(r.events, running + 1, r.events.size());
    IterationOutcome out = replay.Conclude(*r.messages);
    EXPECT_EQ(out.outcome, OutcomeName::kTimeout);
    EXPECT_EQ(out.error, "the iteration took longer than " + FormatDuration(Millis(r.events[running].t + 100ms)) +
                             " and was aborted");
}

TEST(UnitIteration, AbortThatNeverBringsIdleStopsWaitingAfterTheGrace)
{
    Recording r = Load("abort");
    const std::size_t running = FirstRunningTool(r.events);
    ASSERT_LT(running, r.events.size());
    Replay replay;
    replay.Feed(r.events, 0, running + 1);
    replay.around.stop_now = true;
    replay.Perform(replay.machine.Check(replay.around, replay.clock.Now()));
    replay.AdvanceBy(14s);
    EXPECT_FALSE(replay.machine.done_waiting(replay.clock.Now()));
    replay.AdvanceBy(1s);
    EXPECT_TRUE(replay.machine.done_waiting(replay.clock.Now()));
    EXPECT_FALSE(replay.machine.idle());
}

TEST(UnitIteration, SessionErrorWithoutIdleEndsAtTheStallTimeoutWithTheFirstError)
{
    Recording r = Load("agent_missing");
    ASSERT_TRUE(r.messages);
    Replay replay(Settings(30min, 5s));
    replay.FeedAll(r);
    EXPECT_FALSE(replay.machine.idle());
    EXPECT_TRUE(replay.Of(Kind::Abort).empty());
    replay.AdvanceBy(4900ms);
    EXPECT_TRUE(replay.Of(Kind::Abort).empty());
    replay.AdvanceBy(200ms);
    ASSERT_EQ(replay.Of(Kind::Abort).size(), 1u);
    EXPECT_TRUE(replay.machine.done_waiting(replay.clock.Now()));  // no grace: nothing runs
    IterationOutcome out = replay.Conclude(*r.messages);
    EXPECT_EQ(out.outcome, OutcomeName::kError);
    EXPECT_EQ(out.error.rfind("UnknownError: Agent not found: \"ghost\"", 0), 0u) << out.error;
    EXPECT_NE(out.error.find("did not go idle within 5s, run.stall_timeout"), std::string::npos) << out.error;
}

TEST(UnitIteration, IterationThatNeverStartsEndsAtTheStallTimeout)
{
    Recording r = Load("promise");
    ASSERT_FALSE(r.events.empty());
    Replay replay(Settings(30min, 3s));
    replay.Feed(r.events, 0, 1);  // session.created only: no busy, no answer
    replay.AdvanceBy(3s);
    ASSERT_EQ(replay.Of(Kind::Abort).size(), 1u);
    IterationOutcome out = replay.Conclude(json::array{});
    EXPECT_EQ(out.outcome, OutcomeName::kError);
    EXPECT_EQ(out.error, "opencode accepted the prompt but the iteration never started: no answer and no busy "
                         "status within 3s (run.stall_timeout)");
}

TEST(UnitIteration, ServerLostInterruptsWithoutAbortOrMessages)
{
    Recording r = Load("server_lost");
    EXPECT_FALSE(r.messages);
    Replay replay;
    replay.FeedAll(r);
    EXPECT_FALSE(replay.finished);
    replay.around.server_lost = true;
    replay.Perform(replay.machine.Check(replay.around, replay.clock.Now()));
    ASSERT_TRUE(replay.finished);
    EXPECT_EQ(replay.finished->outcome, OutcomeName::kInterrupted);
    EXPECT_EQ(replay.finished->error, "the opencode server went away during this iteration");
    EXPECT_TRUE(replay.Of(Kind::Abort).empty());
    // The tool that was running when it went is not logged: it never finished.
    EXPECT_TRUE(replay.Of(Kind::Log, "tool").empty());
}

TEST(UnitIteration, ShutdownAbortsTheLiveSessionAndInterrupts)
{
    Recording r = Load("server_lost");
    Replay replay;
    replay.FeedAll(r);
    replay.around.shutting_down = true;
    replay.around.server_live = true;
    replay.Perform(replay.machine.Check(replay.around, replay.clock.Now()));
    ASSERT_EQ(replay.actions.size(), 2u + replay.Of(Kind::Log).size());
    ASSERT_EQ(replay.Of(Kind::Abort).size(), 1u);
    ASSERT_TRUE(replay.finished);
    EXPECT_EQ(replay.finished->outcome, OutcomeName::kInterrupted);
    EXPECT_EQ(replay.finished->error, "ralphd stopped during this iteration");
    EXPECT_TRUE(replay.Notes().empty());
}

TEST(UnitIteration, UnreadableMessagesAreAnErrorWhileTheServerLives)
{
    IterationMachine live(Settings(), FakeClock().Now());
    IterationActions a = live.ConcludeUnread("HTTP 500", true);
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].outcome.outcome, OutcomeName::kError);
    EXPECT_EQ(a[0].outcome.error, "could not read the session's messages: HTTP 500");
    IterationMachine gone(Settings(), FakeClock().Now());
    a = gone.ConcludeUnread("connection refused", false);
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].outcome.outcome, OutcomeName::kInterrupted);
}

TEST(UnitIteration, WakesAtTheNearestDeadlineAndAtLeastEachMinute)
{
    FakeClock clock;
    IterationMachine m(Settings(30min, 5s), clock.Now());
    EXPECT_EQ(m.WakeAt(clock.Now()), clock.Now() + 5s);  // the stall deadline, not started yet
    m.OnEvent(json::object{{"type", "session.status"}, {"properties", {{"status", {{"type", "busy"}}}}}}, clock.Now());
    EXPECT_EQ(m.WakeAt(clock.Now()), clock.Now() + 60s);
}

TEST(UnitIteration, ReadMessagesSumsTokensAndCostOfEveryAssistantMessage)
{
    Recording r = Load("tools");
    ASSERT_TRUE(r.messages);
    MessagesSummary s = ReadMessages(*r.messages, "COMPLETE", false);
    ASSERT_TRUE(s.readable);
    int64_t in = 0;
    for (const json::value& m : r.messages->as_array())
        if (Str(At(m, "info", "role")) == "assistant") in += Int(At(m, "info", "tokens", "input"));
    EXPECT_EQ(s.tokens_in, in);
    EXPECT_TRUE(s.any_assistant);
    EXPECT_TRUE(s.last_completed);
    EXPECT_FALSE(s.promise);
    EXPECT_EQ(s.error, "");
    EXPECT_EQ(s.parts.size(), 4u);  // two texts, two tools

    Recording aborted = Load("abort");
    ASSERT_TRUE(aborted.messages);
    EXPECT_EQ(ReadMessages(*aborted.messages, "COMPLETE", false).error, "MessageAbortedError: Aborted");
    EXPECT_EQ(ReadMessages(*aborted.messages, "COMPLETE", true).error, "");
    EXPECT_FALSE(ReadMessages(json::value("not an array"), "COMPLETE", false).readable);
}

/// Index of the first step-finish part; events.size() if none.
std::size_t FirstStepFinish(const std::vector<TimedEvent>& events)
{
    for (std::size_t i = 0; i < events.size(); ++i)
        if (Str(At(json::value(events[i].event), "properties", "part", "type")) == "step-finish") return i;
    return events.size();
}

TEST(UnitIteration, TokenBudgetAbortsAtTheFirstStepThatCrossesIt)
{
    Recording r = Load("tools");  // two steps of ~7,700 tokens each
    ASSERT_TRUE(r.messages);
    const std::size_t step = FirstStepFinish(r.events);
    ASSERT_LT(step, r.events.size());
    IterationMachine::Settings settings = Settings();
    settings.budget.max_tokens = 10000;
    settings.spent_before.tokens = 2500;  // earlier iterations' tokens count too
    Replay replay(settings);
    replay.Feed(r.events, 0, step);
    EXPECT_TRUE(replay.Of(Kind::Abort).empty());  // nothing counted before the step finished
    replay.Feed(r.events, step, step + 1);
    ASSERT_EQ(replay.Of(Kind::Abort).size(), 1u);
    replay.Feed(r.events, step + 1, r.events.size());
    IterationOutcome out = replay.Conclude(*r.messages);
    EXPECT_EQ(out.outcome, OutcomeName::kAborted);
    EXPECT_EQ(out.budget, "max_tokens: 10251 used of 10000");
    ASSERT_FALSE(replay.Notes().empty());
    EXPECT_EQ(replay.Notes().front(), "budget reached, max_tokens: 10251 used of 10000: the iteration was aborted");
}

TEST(UnitIteration, CostBudgetCountsEachStepOnce)
{
    IterationMachine::Settings settings = Settings();
    settings.budget.max_cost = 0.50;
    FakeClock clock;
    IterationMachine m(settings, clock.Now());
    auto step = [](const char* id, double cost) {
        json::object part{{"type", "step-finish"}, {"id", id}, {"messageID", "msg_a"}, {"cost", cost},
                          {"tokens", json::object{{"input", 10}, {"output", 2}}}};
        json::object props{{"part", std::move(part)}};
        return json::object{{"type", "message.part.updated"}, {"properties", std::move(props)}};
    };
    IterationMachine::Surroundings around;
    m.OnEvent(step("prt_1", 0.30), clock.Now());
    m.OnEvent(step("prt_1", 0.30), clock.Now());  // the same part again: not counted twice
    EXPECT_TRUE(m.Check(around, clock.Now()).empty());
    m.OnEvent(step("prt_2", 0.25), clock.Now());
    IterationActions actions = m.Check(around, clock.Now());
    ASSERT_EQ(actions.size(), 2u);
    EXPECT_EQ(actions[1].kind, Kind::Abort);
    EXPECT_EQ(Str(actions[0].data.if_contains("message")),
              "budget reached, max_cost: $0.55 spent of $0.50: the iteration was aborted");
}

TEST(UnitIteration, TimeBudgetIsATimerThatNeedsNoEvents)
{
    Recording r = Load("abort");  // a tool that runs until aborted: quiet
    ASSERT_TRUE(r.messages);
    const std::size_t running = FirstRunningTool(r.events);
    ASSERT_LT(running, r.events.size());
    IterationMachine::Settings settings = Settings();
    settings.budget.max_time_ms = 60000;
    settings.spent_before.time = Millis(60000) - (r.events[running].t + 5s);  // 5 s left after the tool starts
    Replay replay(settings);
    replay.Feed(r.events, 0, running + 1);
    EXPECT_TRUE(replay.Of(Kind::Abort).empty());
    EXPECT_EQ(replay.machine.WakeAt(replay.clock.Now()), replay.start_ + r.events[running].t + 5s);
    replay.AdvanceBy(5s);
    ASSERT_EQ(replay.Of(Kind::Abort).size(), 1u);
    replay.Feed(r.events, running + 1, r.events.size());
    IterationOutcome out = replay.Conclude(*r.messages);
    EXPECT_EQ(out.outcome, OutcomeName::kAborted);
    EXPECT_EQ(out.budget, "max_time: 1m running of 1m");
}

TEST(UnitIteration, ProviderLimitsAreRateLimitedAndOtherFailuresErrors)
{
    auto err = [](int status, const char* message) {
        json::object data{{"message", message}};
        if (status) data["statusCode"] = status;
        return json::value(json::object{{"name", "APIError"}, {"data", std::move(data)}});
    };
    EXPECT_TRUE(IsRateLimit(err(429, "Too Many Requests")));
    EXPECT_TRUE(IsRateLimit(err(529, "x")));
    EXPECT_TRUE(IsRateLimit(err(0, "Rate limit reached for requests")));
    EXPECT_TRUE(IsRateLimit(err(400, "You exceeded your current quota")));
    EXPECT_TRUE(IsRateLimit(err(400, "Usage limit reached for this month")));
    EXPECT_TRUE(IsRateLimit(err(503, "The model is overloaded")));
    EXPECT_FALSE(IsRateLimit(err(0, "Cannot connect to API: Unable to connect. Is the computer able to access the url?")));
    EXPECT_FALSE(IsRateLimit(err(500, "fake upstream exploded")));
    EXPECT_FALSE(IsRateLimit(err(401, "Incorrect API key provided")));
}

TEST(UnitIteration, ARateLimitAfterOpencodesRetriesIsRateLimitedNotAnError)
{
    Recording r = Load("http401");
    ASSERT_TRUE(r.messages);
    // The same end with the provider's 429 instead of its 401.
    bool changed = false;
    for (json::value& m : r.messages->as_array()) {
        json::value* data = m.as_object().contains("info") ? m.at("info").as_object().if_contains("error") : nullptr;
        if (!data || !data->is_object()) continue;
        json::object& d = data->as_object()["data"].as_object();
        d["statusCode"] = 429;
        d["message"] = "Rate limit reached for requests";
        changed = true;
    }
    ASSERT_TRUE(changed);
    Replay replay;
    replay.FeedAll(r);
    IterationOutcome out = replay.Conclude(*r.messages);
    EXPECT_EQ(out.outcome, OutcomeName::kRateLimited);
    EXPECT_EQ(out.error, "APIError: Rate limit reached for requests");
}

TEST(UnitBudget, TheFirstBudgetReachedIsNamedWithWhatWasSpent)
{
    RunBudget none;
    EXPECT_EQ(BudgetCrossed(none, {1e9, 1000000000, Millis(1000000000)}), "");
    RunBudget b{0.5, 1000, 60000};
    EXPECT_EQ(BudgetCrossed(b, {0.49, 999, Millis(59999)}), "");
    EXPECT_EQ(BudgetCrossed(b, {0.52, 0, Millis(0)}), "max_cost: $0.52 spent of $0.50");
    EXPECT_EQ(BudgetCrossed(b, {0, 1000, Millis(0)}), "max_tokens: 1000 used of 1000");
    EXPECT_EQ(BudgetCrossed(b, {0, 0, Millis(90000)}), "max_time: 1m30s running of 1m");
    EXPECT_EQ(FormatUsd(0.004), "$0.0040");
}

}  // namespace
}  // namespace ralph
