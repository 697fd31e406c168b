// daemon.*: the daemon itself.
#include "daemon/daemon.h"
#include "daemon/rpc_table.h"
#include "daemon/store.h"

#include <unistd.h>

namespace ralph {

namespace {

asio::awaitable<json::value> Ping(CallContext&, const json::object&) { co_return "pong"; }

asio::awaitable<json::value> Info(CallContext& ctx, const json::object&)
{
    Daemon& d = ctx.daemon;
    co_return json::object{{"pid", getpid()},
                           {"version", RALPH_VERSION},
                           {"uptime", d.uptime_seconds()},
                           {"socket", d.options().socket_path},
                           {"database", d.database_path()},
                           {"schema_version", d.store().SchemaVersion()},
                           {"config", d.config().path},
                           {"state_dir", d.options().state_dir}};
}

asio::awaitable<json::value> Shutdown(CallContext& ctx, const json::object&)
{
    ctx.after_reply = [&d = ctx.daemon] { d.RequestShutdown("daemon.shutdown request"); };
    co_return true;
}

}  // namespace

const std::vector<RpcMethod>& DaemonMethods()
{
    static const std::vector<RpcMethod> methods = {
        {{"daemon.ping", "Checks that the daemon answers.", {}, "`\"pong\"`"}, Ping},
        {{"daemon.info", "Describes the running daemon.", {},
          "`{pid, version, uptime (seconds), socket, database, schema_version, config, state_dir}`"},
         Info},
        {{"daemon.shutdown",
          "Stops the daemon cleanly after replying: running loops are left to resume on the next start.", {},
          "`true`"},
         Shutdown},
    };
    return methods;
}

}  // namespace ralph
