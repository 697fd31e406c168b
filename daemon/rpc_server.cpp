// server.*: the opencode server ralphd manages (SPEC §3).
#include "daemon/daemon.h"
#include "daemon/rpc_table.h"
#include "daemon/server_supervisor.h"

namespace ralph {

namespace {

json::array UntrackedJson(const ServerSupervisor& s)
{
    json::array out;
    for (const UntrackedServer& u : s.UntrackedServers())
        out.push_back(json::object{{"pid", u.pid}, {"port", u.port ? json::value(u.port) : json::value(nullptr)}});
    return out;
}

asio::awaitable<json::value> Status(CallContext& ctx, const json::object&)
{
    ServerSupervisor& s = ctx.daemon.supervisor();
    json::object o = s.Status();
    o["untracked_servers"] = UntrackedJson(s);
    co_return o;
}

asio::awaitable<json::value> Start(CallContext& ctx, const json::object&)
{
    ServerSupervisor& s = ctx.daemon.supervisor();
    bool was_running = s.Live().has_value();
    co_await s.Start();
    json::object o = s.Status();
    o["already_running"] = was_running;
    co_return o;
}

asio::awaitable<json::value> Stop(CallContext& ctx, const json::object&)
{
    ServerSupervisor& s = ctx.daemon.supervisor();
    json::object before = s.Status();
    co_await s.Stop();
    json::object o = s.Status();
    o["was_running"] = !before.at("pid").is_null();
    o["stopped_pid"] = before.at("pid");
    co_return o;
}

asio::awaitable<json::value> Restart(CallContext& ctx, const json::object&)
{
    ServerSupervisor& s = ctx.daemon.supervisor();
    json::value old_pid = s.Status().at("pid");
    co_await s.Restart();
    json::object o = s.Status();
    o["stopped_pid"] = old_pid;
    co_return o;
}

#define RALPH_SERVER_STATUS_FIELDS                                                                                  \
    "`{mode (managed|external), state (stopped|starting|running|unhealthy|backoff|fatal|external), pid, url, port, " \
    "version, uptime (seconds), restarts, last_error, healthy, log, next_restart_in (seconds)}` (null when unknown)"

}  // namespace

const std::vector<RpcMethod>& ServerMethods()
{
    static const std::vector<RpcMethod> methods = {
        {{"server.status",
          "Describes the opencode server, and lists opencode servers of this user that ralph does not manage.",
          {},
          RALPH_SERVER_STATUS_FIELDS " plus `untracked_servers: [{pid, port}]`"},
         Status},
        {{"server.start",
          "Starts the managed server unless it runs, and waits until it is healthy. Clears `fatal` and cuts a "
          "restart back-off short. Error SERVER_UNAVAILABLE says why it could not start and what to do.",
          {},
          "the status object plus `already_running`"},
         Start},
        {{"server.stop",
          "Stops the managed server: POST /global/dispose, SIGTERM to its process group, SIGKILL after "
          "server.stop_timeout, then ends every tool process it left. INVALID_STATE in external mode.",
          {},
          "the status object plus `was_running`, `stopped_pid`"},
         Stop},
        {{"server.restart", "Stops the managed server (as server.stop) and starts it again. INVALID_STATE in external mode.",
          {},
          "the status object plus `stopped_pid`"},
         Restart},
    };
    return methods;
}

}  // namespace ralph
