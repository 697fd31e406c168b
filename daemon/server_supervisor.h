// ServerSupervisor: owns the one shared `opencode serve` (SPEC §3), or watches an external one.
// Runs on the daemon's io_context thread.
#pragma once

#include "daemon/config.h"
#include "daemon/opencode_http.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <functional>
#include <optional>
#include <string>

namespace ralph {

class RunStore;

enum class ServerState { Stopped, Starting, Running, Unhealthy, Backoff, Fatal, External };
const char* ServerStateName(ServerState s);

class ServerSupervisor {
public:
    ServerSupervisor(boost::asio::io_context& io, const ServerSettings& settings, RunStore& store,
                     const std::string& state_dir);
    ~ServerSupervisor();

    /// At daemon start: stops the server a crashed predecessor left behind (only that exact process).
    void ReconcileLeftovers();

    /// The server, started on demand and healthy. Concurrent callers share one start.
    /// Throws RpcError(kServerUnavailable) with a message saying what to do.
    boost::asio::awaitable<ServerEndpoint> Ensure();
    /// Explicit start (also clears `fatal`), stop and restart, for `ralph server ...`.
    boost::asio::awaitable<void> Start();
    boost::asio::awaitable<void> Stop();
    boost::asio::awaitable<void> Restart();
    /// Stops the managed server at daemon shutdown; idempotent.
    boost::asio::awaitable<void> Shutdown();

    ServerState state() const { return state_; }
    /// The endpoint only while the server is running and healthy: what may be shown as live.
    std::optional<ServerEndpoint> Live() const;
    /// mode, state, pid, url, port, version, uptime, restarts, last_error, healthy (server.status).
    boost::json::object Status() const;

    /// Called after every state change (the loop engine reacts to loss and to `fatal`).
    void Subscribe(std::function<void(ServerState)> listener);

private:
    boost::asio::io_context& io_;
    ServerSettings settings_;
    RunStore& store_;
    std::string state_dir_;
    ServerState state_{ServerState::Stopped};
    std::vector<std::function<void(ServerState)>> listeners_;
};

}  // namespace ralph
