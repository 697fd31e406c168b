// ServerSupervisor in external mode (server.mode = external): the server at server.url is
// health-checked every health_interval, never started or stopped.
#include "daemon/server_supervisor.h"

#include "common/errors.h"
#include "common/log.h"

#include <boost/asio/ip/address.hpp>

namespace ralph {

namespace asio = boost::asio;
using Phase = SupervisorPhase;

void ServerSupervisor::SetUpExternal()
{
    external_ = true;
    phase_ = Phase::External;  // the initial phase in this mode, not a transition
    shown_ = ServerState::External;
    std::string url = settings_.url;
    while (!url.empty() && url.back() == '/') url.pop_back();
    constexpr std::string_view scheme = "http://";
    auto colon = url.rfind(':');
    int port = 0;
    if (url.compare(0, scheme.size(), scheme) == 0 && colon != std::string::npos && colon > scheme.size()) {
        try {
            std::size_t used = 0;
            port = std::stoi(url.substr(colon + 1), &used);
            if (used != url.size() - colon - 1) port = 0;
        } catch (const std::exception&) {
            port = 0;
        }
    }
    std::string host = port > 0 ? url.substr(scheme.size(), colon - scheme.size()) : "";
    if (host == "localhost") host = "127.0.0.1";
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    if (port <= 0 || port > 65535 || ec) {
        external_url_error_ = "server.url '" + settings_.url +
                              "' is not http://IP:PORT (e.g. http://127.0.0.1:4096); fix it in ralphd.conf";
        last_error_ = external_url_error_;
        return;
    }
    external_endpoint_.host = host;
    external_endpoint_.port = port;
    external_endpoint_.password = settings_.password;
    SpawnTask(WatchExternal());
}

asio::awaitable<Result<ServerEndpoint>> ServerSupervisor::EnsureExternal()
{
    if (!external_url_error_.empty()) co_return Status(kServerUnavailable, external_url_error_);
    if (healthy_) co_return external_endpoint_;
    HealthCheck check = co_await CheckHealth(external_endpoint_);
    if (check.healthy) {
        healthy_ = true;
        version_ = check.version;
        last_error_.clear();
        co_return external_endpoint_;
    }
    healthy_ = false;
    last_error_ = check.error;
    std::string fix = check.http_status == 401 ? "set server.password in ralphd.conf to its OPENCODE_SERVER_PASSWORD"
                                                : "start it, or fix server.url in ralphd.conf";
    co_return Status(kServerUnavailable, "the external opencode server at " + settings_.url +
                                             " does not answer /global/health (" + last_error_ + "); " + fix);
}

asio::awaitable<void> ServerSupervisor::WatchExternal()
{
    while (phase_ == Phase::External) {
        HealthCheck check = co_await CheckHealth(external_endpoint_);
        if (phase_ != Phase::External) break;
        if (check.healthy != healthy_) {
            if (check.healthy)
                Log(LogLevel::Info) << "the external opencode server at " << settings_.url << " is healthy";
            else
                Log(LogLevel::Warning) << "the external opencode server at " << settings_.url << ": "
                                       << check.error;
            healthy_ = check.healthy;
            Wake();
        }
        if (check.healthy) {
            version_ = check.version;
            last_error_.clear();
        } else {
            last_error_ = check.error;
        }
        co_await WaitUntil([&] { return phase_ != Phase::External; }, clock_.Now() + settings_.health_interval);
    }
}

}  // namespace ralph
