#include "daemon/run_states.h"

#include <array>
#include <ostream>
#include <utility>

namespace ralph {

namespace {

/// The schema version that first allows a value. A migration step's CHECK lists only the values
/// of its own version, so that a released step's SQL never changes when a value is added (a new
/// value comes with a step that rebuilds the table's CHECK).
template <typename E>
int SinceSchema(E)
{
    return 1;
}
int SinceSchema(RunStatus s) { return s == RunStatus::kQueued || s == RunStatus::kPaused ? 6 : 1; }
int SinceSchema(OutcomeName o) { return o == OutcomeName::kRateLimited ? 6 : 1; }

template <typename E, std::size_t N>
using Table = std::array<std::pair<E, std::string_view>, N>;

constexpr Table<RunStatus, 6> kStatuses{{
    {RunStatus::kRunning, "running"},
    {RunStatus::kCompleted, "completed"},
    {RunStatus::kStopped, "stopped"},
    {RunStatus::kFailed, "failed"},
    {RunStatus::kQueued, "queued"},
    {RunStatus::kPaused, "paused"},
}};

constexpr Table<RunReason, 12> kReasons{{
    {RunReason::kNone, ""},
    {RunReason::kPromise, "promise"},
    {RunReason::kPrdComplete, "prd_complete"},
    {RunReason::kMaxIterations, "max_iterations"},
    {RunReason::kUser, "user"},
    {RunReason::kLegacyWorkerGone, "legacy_worker_gone"},
    {RunReason::kConsecutiveFailures, "consecutive_failures"},
    {RunReason::kServerUnavailable, "server_unavailable"},
    {RunReason::kTaskInvalid, "task_invalid"},
    {RunReason::kNoProgress, "no_progress"},
    {RunReason::kBudget, "budget"},
    {RunReason::kProviderUnavailable, "provider_unavailable"},
}};

constexpr Table<OutcomeName, 8> kOutcomes{{
    {OutcomeName::kNone, ""},
    {OutcomeName::kContinue, "continue"},
    {OutcomeName::kComplete, "complete"},
    {OutcomeName::kError, "error"},
    {OutcomeName::kTimeout, "timeout"},
    {OutcomeName::kAborted, "aborted"},
    {OutcomeName::kInterrupted, "interrupted"},
    {OutcomeName::kRateLimited, "rate_limited"},
}};

template <typename E, std::size_t N>
std::string_view NameIn(const Table<E, N>& table, E value)
{
    for (const auto& [v, name] : table)
        if (v == value) return name;
    return "?";
}

template <typename E, std::size_t N>
std::optional<E> ParseIn(const Table<E, N>& table, std::string_view name)
{
    for (const auto& [v, n] : table)
        if (n == name) return v;
    return std::nullopt;
}

template <typename E, std::size_t N>
std::string SqlListOf(const Table<E, N>& table, int schema_version)
{
    std::string out;
    for (const auto& [v, name] : table)
        if (SinceSchema(v) <= schema_version) out += (out.empty() ? "'" : ", '") + std::string(name) + "'";
    return out;
}

}  // namespace

std::string_view Name(RunStatus status) { return NameIn(kStatuses, status); }
std::string_view Name(RunReason reason) { return NameIn(kReasons, reason); }
std::string_view Name(OutcomeName outcome) { return NameIn(kOutcomes, outcome); }

std::ostream& operator<<(std::ostream& out, RunStatus status) { return out << Name(status); }
std::ostream& operator<<(std::ostream& out, RunReason reason) { return out << Name(reason); }
std::ostream& operator<<(std::ostream& out, OutcomeName outcome) { return out << Name(outcome); }

std::optional<RunStatus> ParseRunStatus(std::string_view name) { return ParseIn(kStatuses, name); }
std::optional<RunReason> ParseRunReason(std::string_view name) { return ParseIn(kReasons, name); }
std::optional<OutcomeName> ParseOutcomeName(std::string_view name) { return ParseIn(kOutcomes, name); }

bool IsTerminal(RunStatus status)
{
    return status == RunStatus::kCompleted || status == RunStatus::kStopped || status == RunStatus::kFailed;
}

RunStatus StatusOf(RunReason reason)
{
    switch (reason) {
    case RunReason::kNone:
        return RunStatus::kRunning;
    case RunReason::kPromise:
    case RunReason::kPrdComplete:
        return RunStatus::kCompleted;
    case RunReason::kMaxIterations:
    case RunReason::kUser:
    case RunReason::kLegacyWorkerGone:
    case RunReason::kNoProgress:
    case RunReason::kBudget:
        return RunStatus::kStopped;
    case RunReason::kConsecutiveFailures:
    case RunReason::kServerUnavailable:
    case RunReason::kTaskInvalid:
    case RunReason::kProviderUnavailable:
        return RunStatus::kFailed;
    }
    return RunStatus::kFailed;
}

std::string SqlList(RunStatus, int schema_version) { return SqlListOf(kStatuses, schema_version); }
std::string SqlList(OutcomeName, int schema_version) { return SqlListOf(kOutcomes, schema_version); }

}  // namespace ralph
