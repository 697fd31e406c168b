// The names of a run's states (SPEC §1, §7): its status, why it ended, and how each iteration
// ended. Each enum has one string table, used for JSON, the database and the schema's own CHECK
// constraints, so that a new value is added in one place. Inside the daemon the rows carry the
// enums; names are used only at the edges (SQLite, JSON, events, hook environments, logs).
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

namespace ralph {

enum class RunStatus {
    kRunning,
    kCompleted,
    kStopped,
    kFailed,
    kQueued,  ///< waits for a place under [daemon] max_running (SPEC §8)
    kPaused,  ///< held by ralph pause until ralph resume
};

enum class RunReason {
    kNone,  ///< "": the run has not ended
    kPromise,
    kPrdComplete,
    kMaxIterations,
    kUser,
    kLegacyWorkerGone,
    kConsecutiveFailures,
    kServerUnavailable,
    kTaskInvalid,
    kNoProgress,  ///< in git, max_idle_iterations iterations in a row changed nothing (SPEC §8)
    kBudget,      ///< max_cost, max_tokens or max_time was crossed (SPEC §8)
    kProviderUnavailable,  ///< nothing but rate_limited iterations for rate_limit_give_up
};

enum class OutcomeName {
    kNone,  ///< "": the iteration is under way
    kContinue,
    kComplete,
    kError,
    kTimeout,
    kAborted,
    kInterrupted,
    kRateLimited,  ///< the provider's rate or usage limit, after opencode's own retries (SPEC §7)
};

std::string_view Name(RunStatus status);
std::string_view Name(RunReason reason);
std::string_view Name(OutcomeName outcome);

/// The names, for logs and for gtest's failure messages.
std::ostream& operator<<(std::ostream& out, RunStatus status);
std::ostream& operator<<(std::ostream& out, RunReason reason);
std::ostream& operator<<(std::ostream& out, OutcomeName outcome);

/// The value named `name`, or nothing for a name the table does not have.
std::optional<RunStatus> ParseRunStatus(std::string_view name);
std::optional<RunReason> ParseRunReason(std::string_view name);
std::optional<OutcomeName> ParseOutcomeName(std::string_view name);

/// completed, stopped or failed: a status that never changes again (queued, running and paused
/// are the active ones).
bool IsTerminal(RunStatus status);
/// Whether a status is active: running, queued or paused (SPEC §7); the opposite of IsTerminal.
inline bool IsActive(RunStatus status) { return !IsTerminal(status); }
/// The status a reason ends a run with (kRunning for kNone).
RunStatus StatusOf(RunReason reason);

/// The names a database of `schema_version` allows, as an SQL list for a CHECK constraint:
/// "'running', 'completed', ...".
std::string SqlList(RunStatus, int schema_version);
std::string SqlList(OutcomeName, int schema_version);

}  // namespace ralph
