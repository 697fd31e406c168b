// server.*: the opencode server ralphd manages (SPEC §3).
#include "daemon/daemon.h"
#include "daemon/rpc_table.h"
#include "daemon/server_supervisor.h"

namespace ralph {

namespace {

asio::awaitable<json::value> ServerStatus(CallContext& ctx, const json::object&)
{
    co_return ctx.daemon.supervisor().StatusJson();
}

asio::awaitable<json::value> ServerStart(CallContext& ctx, const json::object&)
{
    ServerSupervisor& s = ctx.daemon.supervisor();
    bool was_running = s.Live().has_value();
    ThrowIfError(co_await s.Start());
    json::object o = s.StatusJson();
    o["already_running"] = was_running;
    co_return o;
}

asio::awaitable<json::value> ServerStop(CallContext& ctx, const json::object&)
{
    ServerSupervisor& s = ctx.daemon.supervisor();
    int pid = s.managed_pid();
    ThrowIfError(co_await s.Stop());
    json::object o = s.StatusJson();
    o["was_running"] = pid != 0;
    o["stopped_pid"] = pid ? json::value(pid) : json::value(nullptr);
    co_return o;
}

asio::awaitable<json::value> ServerRestart(CallContext& ctx, const json::object&)
{
    ServerSupervisor& s = ctx.daemon.supervisor();
    int pid = s.managed_pid();
    ThrowIfError(co_await s.Restart());
    json::object o = s.StatusJson();
    o["stopped_pid"] = pid ? json::value(pid) : json::value(nullptr);
    co_return o;
}

}  // namespace

const std::vector<RpcMethod>& ServerMethods()
{
    static const std::vector<RpcMethod> methods = {
        {{"server.status",
          "Describes the opencode server, and lists opencode servers of this user that ralph does not manage.",
          {},
          "`{mode (managed|external), state (stopped|starting|running|unhealthy|backoff|fatal|external), pid, url, "
          "port, version, uptime (seconds), restarts, last_error, healthy, log, next_restart_in (seconds), "
          "memory, memory_peak (bytes: the managed server's process group at the last health check, and the most "
          "since ralphd started), untracked_servers: [{pid, port}]}`; null where unknown"},
         ServerStatus},
        {{"server.start",
          "Starts the managed server unless it runs, and waits until it is healthy. Clears `fatal` and cuts a "
          "restart back-off short. Error SERVER_UNAVAILABLE says why it could not start and what to do.",
          {},
          "the server.status object plus `already_running`"},
         ServerStart},
        {{"server.stop",
          "Stops the managed server: POST /global/dispose, SIGTERM to its process group, SIGKILL after "
          "server.stop_timeout, then ends every tool process it left. INVALID_STATE in external mode.",
          {},
          "the server.status object plus `was_running`, `stopped_pid`"},
         ServerStop},
        {{"server.restart", "Stops the managed server (as server.stop) and starts it again. INVALID_STATE in external mode.",
          {},
          "the server.status object plus `stopped_pid`"},
         ServerRestart},
    };
    return methods;
}

}  // namespace ralph
