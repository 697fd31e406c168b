// Following a run (run.events with follow) for `ralph run -f`, `ralph logs -f` and the short look
// `ralph run` takes before it says a run has started; and the exit codes of SPEC §11.
#pragma once

#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>

namespace ralph {

class Client;

/// How a follow may print and when it may end before the run does.
struct FollowOptions {
    bool print_lines{false};  ///< one human line per event (a status line at the bottom on a terminal)
    bool print_json{false};   ///< one JSON object per line per event, state events included
    bool verbose{false};      ///< with print_lines: a tool's whole output, not its last lines
    /// Ends the follow early when it returns true for an event (e.g. the first iteration.start).
    std::function<bool(const boost::json::object& event)> stop_at;
    /// Ends the follow early when this much time has passed.
    std::optional<std::chrono::milliseconds> give_up_after;
};

struct FollowResult {
    enum class End { RunEnded, DaemonStopped, StoppedEarly } end{End::RunEnded};
    /// The run as the daemon last reported it (empty after StoppedEarly or a lost connection).
    boost::json::object run;
};

/// Follows run `run_id` from its first event. Ctrl-C ends the process saying that the run goes
/// on and how to stop it. A daemon that stops (or whose connection drops) gives DaemonStopped.
FollowResult FollowRun(Client& client, int64_t run_id, const FollowOptions& options);

/// Exit code for how a run ended: 0 completed, 4 stopped, 5 failed; 0 while it is still active.
int ExitCodeForRun(const boost::json::object& run);

/// Exit code of a follow that went to the end: the run's, or 6 when the daemon stopped first.
int ExitCodeForFollow(const FollowResult& result);

}  // namespace ralph
