// IterationMachine: one iteration's logic without I/O (SPEC §8). It is fed the events of the
// iteration's session (as EventHub hands them: {type, properties}), what happens around it (stop
// --now, server loss, shutdown) and the time, and answers with what to do: log a part, reject a
// permission request or a question, abort the session, finish with an outcome. LoopEngine::Iterate
// is the I/O shell around it: it performs the actions and waits until WakeAt().
//
// Reading the outcome from the session's messages (GET /session/{id}/message) is the pure
// function ReadMessages; Conclude turns it into the iteration's outcome.
#pragma once

#include "common/clock.h"
#include "common/duration.h"
#include "daemon/budget.h"
#include "daemon/run_states.h"

#include <boost/json.hpp>

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ralph {

/// How an iteration ended: its row's outcome (continue, complete, error, timeout, aborted,
/// interrupted, rate_limited), error, whether the promise was seen, tokens and cost.
struct IterationOutcome {
    OutcomeName outcome{OutcomeName::kContinue};
    std::string error;
    bool promise{false};
    int64_t tokens_in{0}, tokens_out{0}, tokens_reasoning{0};
    double cost{0};
    std::string budget;  ///< the budget that ended it (aborted), in words; empty otherwise
};

/// One thing the shell must do, in the order given.
struct IterationAction {
    enum class Kind {
        Log,               ///< append the run event `log_kind` ("text", "tool", "note", "error") with `data`
        RejectPermission,  ///< POST /permission/{request_id}/reply {reject, kRejectMessage}
        RejectQuestion,    ///< POST /question/{request_id}/reject
        Abort,             ///< POST /session/{id}/abort (when the server is live); then call AbortSent()
        Finish,            ///< the iteration is over with `outcome`; read no messages
    };
    Kind kind;
    std::string log_kind;
    boost::json::object data;
    std::string request_id;
    IterationOutcome outcome;
};
using IterationActions = std::vector<IterationAction>;

/// What an unattended loop answers to a permission request or a question it rejects.
extern const char* const kRejectMessage;

/// "APIError: Incorrect API key provided" from opencode's error object.
std::string DescribeOpencodeError(const boost::json::value& error);

/// Whether opencode's error object is the provider's rate or usage limit, a quota or overloading
/// (HTTP 429 or 529, or a message naming one), which waiting cures (SPEC §7). Connection refused,
/// other 5xx and authentication errors are not.
bool IsRateLimit(const boost::json::value& error);

/// What the session's messages say (GET /session/{id}/message), read without judging.
struct MessagesSummary {
    bool readable{false};        ///< an array
    bool any_assistant{false};   ///< at least one assistant message
    bool last_completed{false};  ///< the last assistant message has time.completed
    bool promise{false};         ///< a text part of an assistant message holds the promise
    std::string error;           ///< the last assistant error (but MessageAbortedError after our own abort)
    bool rate_limited{false};    ///< that error is the provider's rate or usage limit (IsRateLimit)
    int64_t tokens_in{0}, tokens_out{0}, tokens_reasoning{0};
    double cost{0};
    /// The text and tool parts of the assistant messages, in order, as JSON.
    std::vector<const boost::json::value*> parts;
};

/// Reads `messages`; `aborted_by_us` leaves out the MessageAbortedError our own abort caused.
/// The parts point into `messages`.
MessagesSummary ReadMessages(const boost::json::value& messages, const std::string& promise, bool aborted_by_us);

class IterationMachine {
public:
    struct Settings {
        Millis iteration_timeout{0};
        Millis stall_timeout{0};
        std::string project_root;  ///< tool paths in log events are made relative to it
        std::string promise;       ///< the completion promise
        RunBudget budget;          ///< the run's budgets (SPEC §8)
        BudgetSpent spent_before;  ///< what the run had spent when this iteration's prompt was accepted
    };
    /// What happens around the session, checked after each batch of events.
    struct Surroundings {
        bool server_lost{false};   ///< the server went away during this iteration
        bool shutting_down{false}; ///< ralphd is stopping
        bool server_live{false};   ///< the supervisor has a live server (to abort at shutdown)
        bool stop_now{false};      ///< ralph stop --now
        bool pause_now{false};     ///< ralph pause --now
    };

    /// The prompt was accepted at `now`.
    IterationMachine(Settings settings, Clock::TimePoint now);

    /// Whether OnEvent does anything with events of this type; others need not be parsed.
    static bool Reads(std::string_view type);
    /// One event of the session.
    IterationActions OnEvent(const boost::json::object& event, Clock::TimePoint now);
    /// After the events at hand: interruption, stop --now, the iteration timeout and the stall
    /// rules. Returns Abort (after its note) or Finish actions, or nothing.
    IterationActions Check(const Surroundings& around, Clock::TimePoint now);
    /// The shell has sent the abort that Check asked for.
    void AbortSent(Clock::TimePoint now);
    /// The event stream reconnected and GET /session/status no longer lists the session.
    void SessionNotBusy() { idle_ = true; }

    /// Stop waiting: the session went idle, or our abort's grace is over. Read the messages next.
    bool done_waiting(Clock::TimePoint now) const;
    bool idle() const { return idle_; }
    bool aborted_by_us() const { return aborted_by_us_; }
    /// When to check again without events (at most a minute away).
    Clock::TimePoint WakeAt(Clock::TimePoint now) const;

    /// The end, from the session's messages: logs the parts not logged yet, then Finish.
    IterationActions Conclude(const boost::json::value& messages);
    /// The end when the messages could not be read (`why`); `server_live` tells error from interrupted.
    IterationActions ConcludeUnread(const std::string& why, bool server_live);

private:
    IterationActions StartAbort(OutcomeName outcome, const std::string& why, Clock::Duration grace);
    /// What the run has spent by `now`: before this iteration, plus its finished steps so far.
    BudgetSpent Spent(Clock::TimePoint now) const;
    IterationAction LogPart(const boost::json::value& part, bool from_messages);

    Settings settings_;
    Clock::TimePoint started_at_, deadline_, stall_deadline_;
    std::optional<Clock::TimePoint> time_budget_end_;  ///< when max_time runs out
    bool started_{false};
    bool idle_{false};
    bool aborted_by_us_{false};
    Clock::Duration abort_grace_{};
    std::optional<Clock::TimePoint> error_deadline_;  ///< set by session.error: idle must follow
    std::optional<Clock::TimePoint> abort_deadline_;
    std::set<std::string> user_messages_, logged_parts_, counted_steps_;
    double step_cost_{0};    ///< of this iteration's finished steps (step-finish parts)
    int64_t step_tokens_{0};
    std::string session_error_;
    bool session_error_rate_limited_{false};
    IterationOutcome result_;  ///< outcome and error once aborted by us
};

/// Finds `<promise>TEXT</promise>` (whitespace around TEXT allowed) in agent output.
bool ContainsPromise(const std::string& text, const std::string& promise);

}  // namespace ralph
