#include "daemon/server_supervisor.h"

#include "common/errors.h"

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

ServerSupervisor::ServerSupervisor(boost::asio::io_context& io, const ServerSettings& settings, RunStore& store,
                                   const std::string& state_dir)
    : io_(io), settings_(settings), store_(store), state_dir_(state_dir)
{
}

ServerSupervisor::~ServerSupervisor() = default;

void ServerSupervisor::ReconcileLeftovers() {}

boost::asio::awaitable<ServerEndpoint> ServerSupervisor::Ensure()
{
    throw RpcError(kServerUnavailable, "the opencode server supervisor is not implemented yet");
    co_return ServerEndpoint{};
}

boost::asio::awaitable<void> ServerSupervisor::Start() { co_await Ensure(); }
boost::asio::awaitable<void> ServerSupervisor::Stop() { co_return; }
boost::asio::awaitable<void> ServerSupervisor::Restart() { co_return; }
boost::asio::awaitable<void> ServerSupervisor::Shutdown() { co_return; }

std::optional<ServerEndpoint> ServerSupervisor::Live() const { return std::nullopt; }

boost::json::object ServerSupervisor::Status() const
{
    return {{"mode", settings_.mode}, {"state", ServerStateName(state_)}, {"url", nullptr}, {"healthy", false}};
}

void ServerSupervisor::Subscribe(std::function<void(ServerState)> listener) { listeners_.push_back(std::move(listener)); }

}  // namespace ralph
