#include "daemon/supervisor_phase.h"

namespace ralph {

const char* ServerStateName(ServerState s)
{
    switch (s) {
    case ServerState::Stopped: return "stopped";
    case ServerState::Starting: return "starting";
    case ServerState::Running: return "running";
    case ServerState::Unhealthy: return "unhealthy";
    case ServerState::Backoff: return "backoff";
    case ServerState::Fatal: return "fatal";
    case ServerState::External: return "external";
    }
    return "?";
}

const char* SupervisorPhaseName(SupervisorPhase p)
{
    using P = SupervisorPhase;
    switch (p) {
    case P::Stopped: return "stopped";
    case P::Starting: return "starting";
    case P::Running: return "running";
    case P::Unhealthy: return "unhealthy";
    case P::BackoffStartFailed: return "backoff (start failed)";
    case P::BackoffServerEnded: return "backoff (server ended)";
    case P::Fatal: return "fatal";
    case P::Stopping: return "stopping";
    case P::ShuttingDown: return "shutting down";
    case P::ShutDown: return "shut down";
    case P::External: return "external";
    }
    return "?";
}

std::optional<ServerState> ShownState(SupervisorPhase p, bool external)
{
    using P = SupervisorPhase;
    switch (p) {
    case P::Stopped: return ServerState::Stopped;
    case P::Starting: return ServerState::Starting;
    case P::Running: return ServerState::Running;
    case P::Unhealthy: return ServerState::Unhealthy;
    case P::BackoffStartFailed:
    case P::BackoffServerEnded: return ServerState::Backoff;
    case P::Fatal: return ServerState::Fatal;
    case P::Stopping:
    case P::ShuttingDown: return std::nullopt;
    case P::ShutDown: return external ? ServerState::External : ServerState::Stopped;
    case P::External: return ServerState::External;
    }
    return std::nullopt;
}

bool TransitionAllowed(SupervisorPhase from, SupervisorPhase to)
{
    using P = SupervisorPhase;
    if (to == P::ShuttingDown) return from != P::ShuttingDown && from != P::ShutDown && from != P::Stopping;
    if (to == P::Stopping) return from != P::External && !EndingPhase(from);
    switch (from) {
    case P::Stopped: return to == P::Starting;
    case P::Starting: return to == P::Running || to == P::BackoffStartFailed || to == P::Fatal;
    case P::Running: return to == P::Unhealthy || to == P::BackoffServerEnded || to == P::Fatal;
    case P::Unhealthy: return to == P::BackoffServerEnded || to == P::Fatal;
    case P::BackoffStartFailed:
    case P::BackoffServerEnded: return to == P::Starting;
    case P::Fatal: return to == P::Stopped;
    case P::Stopping: return to == P::Stopped;
    case P::ShuttingDown: return to == P::ShutDown;
    case P::ShutDown:
    case P::External: return false;
    }
    return false;
}

}  // namespace ralph
