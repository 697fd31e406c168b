// daemon.*: the daemon itself.
#include "daemon/daemon.h"
#include "daemon/rpc_table.h"
#include "daemon/store.h"
#include "common/errors.h"

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
                           {"state_dir", d.options().state_dir},
                           {"warming_up", d.warming_up()}};
}

asio::awaitable<json::value> Shutdown(CallContext& ctx, const json::object&)
{
    ctx.after_reply = [&d = ctx.daemon] { d.RequestShutdown("daemon.shutdown request"); };
    co_return true;
}

asio::awaitable<json::value> Reload(CallContext& ctx, const json::object&)
{
    Daemon& d = ctx.daemon;
    Daemon::ReloadReport report;
    try {
        report = d.ReloadAndLog("daemon.reload");
    } catch (const ConfigError& e) {
        throw RpcError(kInvalidState, std::string(e.what()) + "; nothing was changed: fix it and run `ralph daemon reload` again");
    }
    json::array applied, needs_restart;
    for (const std::string& key : report.applied) applied.emplace_back(key);
    for (const auto& [key, why] : report.needs_restart) needs_restart.push_back(json::object{{"key", key}, {"why", why}});
    co_return json::object{{"config", d.config().path}, {"applied", std::move(applied)},
                           {"needs_restart", std::move(needs_restart)}};
}

}  // namespace

const std::vector<RpcMethod>& DaemonMethods()
{
    static const std::vector<RpcMethod> methods = {
        {{"daemon.ping", "Checks that the daemon answers.", {}, "`\"pong\"`"}, Ping},
        {{"daemon.info", "Describes the running daemon.", {},
          "`{pid, version, uptime (seconds), socket, database, schema_version, config, state_dir, warming_up}`; "
          "`warming_up` is true until what a previous ralphd left is reconciled (other methods answer -32011 "
          "`WARMING_UP` meanwhile)"},
         Info},
        {{"daemon.shutdown",
          "Stops the daemon cleanly after replying: running loops are left to resume on the next start.", {},
          "`true`"},
         Shutdown},
        {{"daemon.reload",
          "Re-reads ralphd.conf, as SIGHUP does. [run] keys apply to runs started from now on, [server] keys "
          "from the server's next start (a `fatal` server becomes `stopped`). Keys read only at start "
          "(server.mode, server.url, server.password, server.idle_stop) and keys set by ralphd's environment "
          "or --set, which win over the file, are listed in `needs_restart`. An invalid file is INVALID_STATE "
          "and changes nothing.",
          {},
          "`{config, applied: [key], needs_restart: [{key, why}]}`: the keys whose value in the file changed"},
         Reload},
    };
    return methods;
}

}  // namespace ralph
