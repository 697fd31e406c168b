// The server supervisor's phases and the transitions between them, in one place. A phase is finer
// than the public ServerState (`ralph server status`): a back-off knows whether the start failed
// or the server ended, and a stop or shutdown under way is a phase of its own that keeps showing
// the state it began in.
//
//   Stopped ──Ensure──▶ Starting ──▶ Running ──▶ Unhealthy ──▶ BackoffServerEnded ──▶ Starting ...
//                          │            └──────(crashed)──────▶ BackoffServerEnded
//                          └──(failed)──▶ BackoffStartFailed ──▶ Starting ...
//   any of these ──(start limit, no opencode)──▶ Fatal ──explicit start, reload──▶ Stopped
//   any managed phase ──stop──▶ Stopping ──▶ Stopped;   any phase ──shutdown──▶ ShuttingDown ──▶ ShutDown
//   External (server.mode = external) only shuts down.
#pragma once

#include "daemon/server_access.h"

#include <optional>

namespace ralph {

enum class SupervisorPhase {
    Stopped,             ///< no server; the next need starts one
    Starting,            ///< a start attempt is under way (launch, listening line, healthy)
    Running,             ///< up and health-checked
    Unhealthy,           ///< health_failures checks in a row failed: being terminated to restart
    BackoffStartFailed,  ///< waiting to start again after a start that failed
    BackoffServerEnded,  ///< waiting to start again after a running server crashed or was unhealthy
    Fatal,               ///< no restart until an explicit start (or a reload)
    Stopping,            ///< stop, restart or idle stop under way
    ShuttingDown,        ///< ralphd's shutdown under way: nothing starts again
    ShutDown,            ///< after ralphd's shutdown
    External,            ///< server.mode = external: health-checked, never started or stopped
};

const char* SupervisorPhaseName(SupervisorPhase p);

/// The ServerState a phase shows; nothing for a stop or shutdown under way, which keep showing
/// the state they began in. After shutdown a managed server shows `stopped`.
std::optional<ServerState> ShownState(SupervisorPhase p, bool external);

/// Whether the supervisor may go from `from` to `to`.
bool TransitionAllowed(SupervisorPhase from, SupervisorPhase to);

/// A stop or shutdown is under way (or done): whatever a start or a health loop was doing, it gives up.
inline bool EndingPhase(SupervisorPhase p)
{
    return p == SupervisorPhase::Stopping || p == SupervisorPhase::ShuttingDown || p == SupervisorPhase::ShutDown;
}

}  // namespace ralph
