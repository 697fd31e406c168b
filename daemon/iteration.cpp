#include "daemon/iteration.h"

#include "common/json_util.h"
#include "daemon/run_checks.h"
#include "daemon/tool_result.h"

#include <algorithm>
#include <cctype>

namespace ralph {

namespace json = boost::json;

namespace {

/// How long an abort may take to bring the session to idle before the iteration stops waiting.
constexpr auto kAbortGrace = std::chrono::seconds(15);
/// Without events, the iteration checks again at least this often.
constexpr auto kRecheck = std::chrono::seconds(60);

IterationAction Log(const char* kind, json::object data)
{
    IterationAction a{IterationAction::Kind::Log, kind, std::move(data), "", {}};
    return a;
}

IterationAction Note(const std::string& message) { return Log("note", Obj("message", message)); }

IterationAction Finish(IterationOutcome outcome)
{
    return IterationAction{IterationAction::Kind::Finish, "", {}, "", std::move(outcome)};
}

}  // namespace

const char* const kRejectMessage =
    "ralph runs this loop unattended and answers no permission request or question: "
    "continue without it, or write what you need into the task's progress file.";

std::string DescribeOpencodeError(const json::value& error)
{
    std::string name = Str(At(error, "name"));
    std::string message = Str(At(error, "data", "message"));
    if (name.empty()) return message.empty() ? json::serialize(error) : message;
    return message.empty() ? name : name + ": " + message;
}

bool IsRateLimit(const json::value& error)
{
    const int64_t status = Int(At(error, "data", "statusCode"));
    if (status == 429 || status == 529) return true;
    std::string message = Str(At(error, "data", "message"));
    for (char& c : message) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* words : {"rate limit", "rate_limit", "ratelimit", "usage limit", "quota", "overloaded", "too many requests"})
        if (message.find(words) != std::string::npos) return true;
    return false;
}

MessagesSummary ReadMessages(const json::value& messages, const std::string& promise, bool aborted_by_us)
{
    MessagesSummary s;
    if (!messages.is_array()) return s;
    s.readable = true;
    for (const json::value& m : messages.as_array()) {
        const json::value* info = At(m, "info");
        if (!info || Str(At(*info, "role")) != "assistant") continue;
        s.any_assistant = true;
        s.last_completed = At(*info, "time", "completed") != nullptr;
        s.tokens_in += Int(At(*info, "tokens", "input"));
        s.tokens_out += Int(At(*info, "tokens", "output"));
        s.tokens_reasoning += Int(At(*info, "tokens", "reasoning"));
        s.cost += Real(At(*info, "cost"));
        if (auto* err = At(*info, "error"); err && !err->is_null()) {
            if (!(aborted_by_us && Str(At(*err, "name")) == "MessageAbortedError")) {
                s.error = DescribeOpencodeError(*err);
                s.rate_limited = IsRateLimit(*err);
            }
        }
        if (auto* parts = At(m, "parts"); parts && parts->is_array()) {
            for (const json::value& part : parts->as_array()) {
                std::string part_type = Str(At(part, "type"));
                if (part_type == "text") {
                    if (ContainsPromise(Str(At(part, "text")), promise)) s.promise = true;
                    s.parts.push_back(&part);
                } else if (part_type == "tool") {
                    s.parts.push_back(&part);
                }
            }
        }
    }
    return s;
}

IterationMachine::IterationMachine(Settings settings, Clock::TimePoint now)
    : settings_(std::move(settings)), started_at_(now), deadline_(now + settings_.iteration_timeout),
      stall_deadline_(now + settings_.stall_timeout)
{
    // max_time is checked by a timer too: a long quiet tool call sends no events (SPEC §8).
    if (settings_.budget.max_time_ms > 0)
        time_budget_end_ = now + std::max(Millis(0), Millis(settings_.budget.max_time_ms) - settings_.spent_before.time);
}

BudgetSpent IterationMachine::Spent(Clock::TimePoint now) const
{
    BudgetSpent spent = settings_.spent_before;
    spent.cost += step_cost_;
    spent.tokens += step_tokens_;
    spent.time += std::chrono::duration_cast<Millis>(now - started_at_);
    return spent;
}

bool IterationMachine::Reads(std::string_view type)
{
    // Each type OnEvent handles below; opencode's bulkier ones (session.updated, session.diff,
    // message.part.delta) are not among them.
    static constexpr std::string_view kRead[] = {"session.idle",     "session.status", "session.error",
                                                 "permission.asked", "question.asked", "message.updated",
                                                 "message.part.updated"};
    return std::find(std::begin(kRead), std::end(kRead), type) != std::end(kRead);
}

IterationActions IterationMachine::OnEvent(const json::object& ev, Clock::TimePoint now)
{
    IterationActions actions;
    std::string type = Str(ev.if_contains("type"));
    static const json::value kNone;
    const json::value* found = ev.if_contains("properties");
    const json::value& props = found ? *found : kNone;
    if (type == "session.idle") {
        idle_ = true;
    } else if (type == "session.status") {
        std::string status = Str(At(props, "status", "type"));
        if (status == "busy" || status == "retry") started_ = true;
        if (status == "busy") error_deadline_.reset();  // working again after the error: no stall
        if (status == "idle") {
            idle_ = true;
        } else if (status == "retry") {
            actions.push_back(Note("the model failed and opencode retries (attempt " +
                                   std::to_string(Int(At(props, "status", "attempt"))) +
                                   "): " + Str(At(props, "status", "message"))));
        }
    } else if (type == "session.error") {
        if (auto* err = At(props, "error")) {
            std::string name = Str(At(*err, "name"));
            // The first error says most ("Agent not found: ..."); opencode may add a stack trace.
            if (!(aborted_by_us_ && name == "MessageAbortedError") && session_error_.empty()) {
                session_error_ = DescribeOpencodeError(*err);
                session_error_rate_limited_ = IsRateLimit(*err);
            }
            if (!error_deadline_) error_deadline_ = now + settings_.stall_timeout;
        }
    } else if (type == "permission.asked") {
        actions.push_back(Note("rejected a permission request (" + Str(At(props, "permission")) +
                               ") since the loop runs unattended"));
        actions.push_back({IterationAction::Kind::RejectPermission, "", {}, Str(At(props, "id")), {}});
    } else if (type == "question.asked") {
        actions.push_back(Note("rejected a question since the loop runs unattended"));
        actions.push_back({IterationAction::Kind::RejectQuestion, "", {}, Str(At(props, "id")), {}});
    } else if (type == "message.updated") {
        if (Str(At(props, "info", "role")) == "user") user_messages_.insert(Str(At(props, "info", "id")));
        else started_ = true;
    } else if (type == "message.part.updated") {
        const json::value* part = At(props, "part");
        if (!part || user_messages_.count(Str(At(*part, "messageID")))) return actions;
        std::string part_type = Str(At(*part, "type"));
        std::string part_id = Str(At(*part, "id"));
        if (part_type == "step-finish") {
            // Each finished LLM step says what it used: the budgets are checked as they arrive.
            if (counted_steps_.insert(part_id).second) {
                step_tokens_ += Int(At(*part, "tokens", "input")) + Int(At(*part, "tokens", "output")) +
                                Int(At(*part, "tokens", "reasoning"));
                step_cost_ += Real(At(*part, "cost"));
            }
        } else if (part_type == "tool") {
            std::string status = Str(At(*part, "state", "status"));
            if ((status == "completed" || status == "error") && logged_parts_.insert(part_id).second)
                actions.push_back(Log("tool", ToolEventData(*part, settings_.project_root)));
        } else if (part_type == "text" && At(*part, "time", "end") && !At(*part, "synthetic") &&
                   logged_parts_.insert(part_id).second) {
            actions.push_back(Log("text", Obj("text", Str(At(*part, "text")))));
        }
    }
    return actions;
}

IterationActions IterationMachine::Check(const Surroundings& around, Clock::TimePoint now)
{
    if (idle_) return {};
    if (around.server_lost || (around.shutting_down && !aborted_by_us_)) {
        IterationActions actions;
        if (around.shutting_down && around.server_live) actions.push_back({IterationAction::Kind::Abort, "", {}, "", {}});
        IterationOutcome interrupted;
        interrupted.outcome = OutcomeName::kInterrupted;
        interrupted.error = around.server_lost ? "the opencode server went away during this iteration"
                                               : "ralphd stopped during this iteration";
        actions.push_back(Finish(std::move(interrupted)));
        return actions;
    }
    if (aborted_by_us_) return {};
    if (around.stop_now) return StartAbort(OutcomeName::kAborted, "stopped at once by ralph stop --now", kAbortGrace);
    if (around.pause_now) return StartAbort(OutcomeName::kAborted, "paused at once by ralph pause --now", kAbortGrace);
    if (std::string crossed = BudgetCrossed(settings_.budget, Spent(now)); !crossed.empty()) {
        result_.budget = crossed;
        return StartAbort(OutcomeName::kAborted, "budget reached, " + crossed + ": the iteration was aborted", kAbortGrace);
    }
    if (now >= deadline_) {
        return StartAbort(OutcomeName::kTimeout,
                          "the iteration took longer than " + FormatDuration(settings_.iteration_timeout) + " and was aborted",
                          kAbortGrace);
    }
    const bool error_stuck = error_deadline_ && now >= *error_deadline_;
    const bool never_started = !started_ && now >= stall_deadline_;
    // Nothing runs in the session: end at once, with opencode's own error when it gave one.
    if (error_stuck || never_started)
        return StartAbort(OutcomeName::kError, StallMessage(session_error_, settings_.stall_timeout), Clock::Duration::zero());
    return {};
}

IterationActions IterationMachine::StartAbort(OutcomeName outcome, const std::string& why, Clock::Duration grace)
{
    aborted_by_us_ = true;
    abort_grace_ = grace;
    result_.outcome = outcome;
    result_.error = why;
    return {Note(why), {IterationAction::Kind::Abort, "", {}, "", {}}};
}

void IterationMachine::AbortSent(Clock::TimePoint now)
{
    if (aborted_by_us_ && !abort_deadline_) abort_deadline_ = now + abort_grace_;
}

bool IterationMachine::done_waiting(Clock::TimePoint now) const
{
    return idle_ || (abort_deadline_ && now >= *abort_deadline_);  // aborted but never went idle
}

Clock::TimePoint IterationMachine::WakeAt(Clock::TimePoint now) const
{
    auto wake_at = aborted_by_us_ ? abort_deadline_.value_or(now) : deadline_;
    if (!aborted_by_us_ && !started_) wake_at = std::min(wake_at, stall_deadline_);
    if (!aborted_by_us_ && error_deadline_) wake_at = std::min(wake_at, *error_deadline_);
    if (!aborted_by_us_ && time_budget_end_) wake_at = std::min(wake_at, *time_budget_end_);
    return std::min(wake_at, now + kRecheck);
}

IterationActions IterationMachine::Conclude(const json::value& messages)
{
    MessagesSummary read = ReadMessages(messages, settings_.promise, aborted_by_us_);
    IterationActions actions;
    for (const json::value* part : read.parts) {
        std::string part_id = Str(At(*part, "id"));
        if (Str(At(*part, "type")) == "text") {
            std::string text = Str(At(*part, "text"));
            if (logged_parts_.insert(part_id).second && !text.empty()) actions.push_back(Log("text", Obj("text", text)));
        } else if (logged_parts_.insert(part_id).second) {
            actions.push_back(Log("tool", ToolEventData(*part, settings_.project_root)));
        }
    }
    IterationOutcome r = result_;
    r.promise = read.promise;
    r.tokens_in = read.tokens_in;
    r.tokens_out = read.tokens_out;
    r.tokens_reasoning = read.tokens_reasoning;
    r.cost = read.cost;
    if (!aborted_by_us_) {  // otherwise timeout or stop --now, decided before
        if (!session_error_.empty() || !read.error.empty()) {
            // After opencode's own retries: a provider limit is waited out, anything else fails.
            const bool limited = !read.error.empty() ? read.rate_limited : session_error_rate_limited_;
            r.outcome = limited ? OutcomeName::kRateLimited : OutcomeName::kError;
            r.error = !read.error.empty() ? read.error : session_error_;
            r.promise = false;
        } else if (!read.any_assistant) {
            r.outcome = OutcomeName::kError;
            r.error = "the agent gave no answer";
        } else if (!read.last_completed) {
            r.outcome = OutcomeName::kError;
            r.error = "the agent's last answer never finished";
        } else {
            r.outcome = r.promise ? OutcomeName::kComplete : OutcomeName::kContinue;
        }
        if (!r.error.empty()) actions.push_back(Log("error", Obj("message", r.error)));
    }
    actions.push_back(Finish(std::move(r)));
    return actions;
}

IterationActions IterationMachine::ConcludeUnread(const std::string& why, bool server_live)
{
    if (aborted_by_us_) return {Finish(result_)};
    IterationOutcome r;
    r.outcome = server_live ? OutcomeName::kError : OutcomeName::kInterrupted;
    r.error = "could not read the session's messages: " + why;
    return {Finish(std::move(r))};
}

bool ContainsPromise(const std::string& text, const std::string& promise)
{
    static const std::string open = "<promise>", close = "</promise>";
    auto trim = [](std::string_view s) {
        auto first = s.find_first_not_of(" \t\r\n");
        if (first == std::string_view::npos) return std::string_view();
        return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
    };
    // Whitespace around the promise is no part of it, on either side (found by fuzz_task: a
    // promise given as "DONE " could never be matched).
    std::string_view wanted = trim(promise);
    if (wanted.empty()) return false;
    std::size_t pos = 0;
    while ((pos = text.find(open, pos)) != std::string::npos) {
        std::size_t start = pos + open.size();
        std::size_t end = text.find(close, start);
        if (end == std::string::npos) return false;
        if (trim(std::string_view(text).substr(start, end - start)) == wanted) return true;
        pos = end + close.size();
    }
    return false;
}

}  // namespace ralph
