// Daemon: owns everything ralphd runs — config, store, socket, the opencode server supervisor and
// the loop engine — on one io_context thread. Run() reads like the daemon's life: lock, open the
// database, reconcile leftovers, listen, report ready, serve, shut down in two phases.
#pragma once

#include "daemon/config.h"
#include "daemon/rpc_table.h"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ralph {

class GitRunner;

class RunStore;
class StoreGuard;
class SocketServer;
class ServerSupervisor;
class LoopEngine;
class SdWatchdog;
class OpencodeClient;
struct ServerEndpoint;
/// As in daemon/opencode_client.h (not included here: rpc_server.cpp has a handler named Status).
using OpencodeClientFactory = std::function<std::unique_ptr<OpencodeClient>(const ServerEndpoint&)>;

struct DaemonOptions {
    std::string socket_path;
    std::string state_dir;
    std::string config_path;
    std::map<std::string, std::string> overrides;  ///< "section.key" -> value from the command line
    std::chrono::milliseconds client_idle_timeout{std::chrono::seconds(60)};
};

class Daemon {
public:
    explicit Daemon(DaemonOptions options);
    ~Daemon();

    /// Runs until shut down; returns the process exit code. Errors are logged with what to do.
    /// Open(), then serve until a shutdown request.
    int Run();
    /// Everything before serving: config, instance lock, database, the previous daemon's
    /// leftovers, the socket (listening, or inherited from systemd) and left runs resumed.
    /// 0 when ready, else the exit code. Fuzzers drive io() themselves after it.
    int Open();
    /// Starts a clean shutdown (idempotent); safe to call from a handler.
    void RequestShutdown(const std::string& why);

    struct ReloadReport {
        std::vector<std::string> applied;                                ///< keys now in use
        std::vector<std::pair<std::string, std::string>> needs_restart;  ///< key, why it is not
    };
    /// Re-reads ralphd.conf (daemon.reload, SIGHUP): keys that can change while ralphd runs take
    /// their new values ([run] for runs started from now on, [server] from the server's next
    /// start); the others are named with why. Throws ConfigError and then changes nothing.
    ReloadReport Reload();
    /// Reload() with the outcome in the log and systemd told (RELOADING=1, then READY=1).
    ReloadReport ReloadAndLog(const std::string& why);

    asio::io_context& io() { return io_; }
    const Config& config() const { return config_; }
    RunStore& store() { return *store_; }
    ServerSupervisor& supervisor() { return *supervisor_; }
    LoopEngine& loops() { return *loops_; }
    GitRunner& git() { return *git_; }
    /// Makes the opencode client of a server endpoint (handlers, the loop engine, the event hub).
    const OpencodeClientFactory& opencode_clients() const { return opencode_clients_; }
    const DaemonOptions& options() const { return options_; }
    const RpcTable& table() const { return table_; }
    std::string database_path() const;
    double uptime_seconds() const;
    bool shutting_down() const { return shutting_down_; }
    /// From listening until what a previous daemon left is reconciled (SPEC §12, WARMING_UP).
    bool warming_up() const { return warming_up_; }

private:
    /// server.max_memory and server.instance_idle to the loop engine (managed mode only: an
    /// external server is not ralph's to restart or to dispose instances of).
    void ApplyServerLimits();
    bool TakeInstanceLock();
    /// Reconciles what a previous daemon left (its server, its runs), then reports ready.
    asio::awaitable<void> WarmUp();
    asio::awaitable<void> Shutdown();

    DaemonOptions options_;
    Config config_;
    std::map<std::string, std::string> config_file_values_;  ///< what ralphd.conf set when last read
    asio::io_context io_{1};
    RpcTable table_;
    std::unique_ptr<RunStore> store_;
    std::unique_ptr<StoreGuard> store_guard_;  ///< the database put back when deleted; events kept while unwritable
    std::unique_ptr<ServerSupervisor> supervisor_;
    OpencodeClientFactory opencode_clients_;
    std::unique_ptr<GitRunner> git_;  ///< checkpoints, diff, restore
    std::unique_ptr<LoopEngine> loops_;
    std::unique_ptr<SocketServer> socket_;
    std::unique_ptr<SdWatchdog> watchdog_;  ///< systemd's watchdog, fed while serving
    int lock_fd_{-1};
    std::string lock_path_;
    bool listening_{false};
    bool shutting_down_{false};
    bool warming_up_{true};
    std::chrono::steady_clock::time_point started_{std::chrono::steady_clock::now()};
};

}  // namespace ralph
