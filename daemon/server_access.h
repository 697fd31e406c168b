// ServerAccess: what the loop engine (and the other users of the shared server) may do with it —
// the narrow side of ServerSupervisor. Unit tests of the loop implement it with a fake.
#pragma once

#include "common/status.h"
#include "daemon/opencode_http.h"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace ralph {

enum class ServerState { Stopped, Starting, Running, Unhealthy, Backoff, Fatal, External };
const char* ServerStateName(ServerState s);

class ServerAccess {
public:
    virtual ~ServerAccess() = default;

    virtual ServerState state() const = 0;
    /// The endpoint only while the server is running and healthy: what may be shown as live.
    virtual std::optional<ServerEndpoint> Live() const = 0;
    /// The server, started on demand and healthy. Concurrent callers share one start. Fails
    /// with kServerUnavailable and a message saying what to do.
    virtual boost::asio::awaitable<Result<ServerEndpoint>> Ensure() = 0;
    /// Stops the managed server (the idle stop); see ServerSupervisor::Stop.
    virtual boost::asio::awaitable<Status> Stop() = 0;
    /// Stops begun so far, and why the latest one began: an iteration that saw this change was
    /// interrupted by a stop, not failed.
    virtual uint64_t stops_begun() const = 0;
    virtual const std::string& last_stop_why() const = 0;
    /// Called after every state change (the loop engine reacts to loss and to `fatal`).
    virtual void Subscribe(std::function<void(ServerState)> listener) = 0;
    /// Resident memory of the managed server's process group at the last health check (bytes);
    /// 0 when unknown or not managed (SPEC §8).
    virtual int64_t memory() const = 0;
    /// Clients of the server other than ralphd (an `opencode attach` TUI): established
    /// connections to its port that are not ralphd's.
    virtual int ForeignClients() const = 0;
    /// Stops the managed server and starts it again, recording `why` in the server's history.
    virtual boost::asio::awaitable<Status> Restart(const std::string& why) = 0;
};

}  // namespace ralph
