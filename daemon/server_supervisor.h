// ServerSupervisor: owns the one shared `opencode serve` (SPEC §3), or watches an external one.
// Runs on the daemon's io_context thread; every member is used from that thread only.
//
// Life of the managed server: Ensure() (or Start()) launches it on a free port with a fresh
// password, waits for its "listening" line and a healthy /global/health, then health-checks it
// every health_interval. A crash (noticed through SIGCHLD) or health_failures failed checks in a
// row restart it after an exponential back-off (RestartPolicy); too many starts in
// start_limit_interval make it `fatal` until an explicit Start(). Stop() disposes it, signals its
// process group, and kills whatever tool processes it left (ralphd is a child subreaper).
//
// The parts: the phases and their transitions (supervisor_phase.*), the restart policy
// (restart_policy.*), the server's output and log (server_output.*), ending processes
// (end_processes.*); here: the public operations and stopping (server_supervisor.cpp), starting
// and health-checking (server_supervise.cpp), external mode (server_external.cpp), and the
// leftovers of a crashed predecessor or a dead server (server_leftovers.cpp). Every wait and
// deadline goes through the Clock it is given.
#pragma once

#include "common/clock.h"
#include "daemon/config.h"
#include "daemon/end_processes.h"
#include "daemon/opencode_http.h"
#include "daemon/proc_scan.h"
#include "daemon/restart_policy.h"
#include "daemon/server_access.h"
#include "daemon/supervisor_phase.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ralph {

class RunStore;
class ProcessLauncher;
class ServerOutputLog;
struct ManagedServerRecord;
struct ServerInstance;

/// Test hooks; the defaults are what ralphd uses.
struct SupervisorHooks {
    /// null: a PosixLauncher reaping on SIGCHLD, and the supervisor makes ralphd a child subreaper.
    std::shared_ptr<ProcessLauncher> launcher;
    std::string proc_root{"/proc"};
    Millis initial_backoff{std::chrono::seconds(1)};
    Millis stable_after{std::chrono::minutes(1)};
    Millis start_timeout{std::chrono::seconds(60)};  ///< exec to healthy
    std::string path_env;                            ///< where to look for opencode; empty: $PATH
};

/// A server process found on the machine that ralph does not manage.
struct UntrackedServer {
    int pid{0};
    int port{0};  ///< 0 when no listening socket was found
};

class ServerSupervisor final : public ServerAccess {
public:
    ServerSupervisor(boost::asio::io_context& io, const ServerSettings& settings, RunStore& store,
                     const std::string& state_dir, SupervisorHooks hooks = {}, Clock& clock = SystemClock());
    ~ServerSupervisor();
    ServerSupervisor(const ServerSupervisor&) = delete;
    ServerSupervisor& operator=(const ServerSupervisor&) = delete;
    /// The one launcher (and reaper) of ralphd's children; the loops start git through it.
    ProcessLauncher& launcher() { return *launcher_; }

    /// At daemon start, before serving: stops the server a crashed predecessor left behind (only
    /// that exact process: same pid, same start time, an opencode command line) and its tool
    /// processes, then clears the record; then every process still carrying this state directory
    /// in RALPHD_OWNER (a server started but never recorded, tools of a server that died).
    /// Takes at most twice stop_timeout plus a few seconds. ralphd awaits it while it answers
    /// WARMING_UP; ReconcileLeftovers() is the same on an io_context of its own, blocking (for
    /// tests; on a FakeClock it would block for ever).
    boost::asio::awaitable<void> ReconcileAsync();
    void ReconcileLeftovers();

    /// The server, started on demand and healthy. Concurrent callers share one start.
    /// Fails with kServerUnavailable and a message saying what to do.
    boost::asio::awaitable<Result<ServerEndpoint>> Ensure() override;
    /// Explicit start (also clears `fatal` and cuts a back-off short), stop and restart, for
    /// `ralph server ...`. Stop and Restart fail with kInvalidState in external mode.
    boost::asio::awaitable<Status> Start();
    boost::asio::awaitable<Status> Stop() override;
    boost::asio::awaitable<Status> Restart();
    boost::asio::awaitable<Status> Restart(const std::string& why) override;
    int64_t memory() const override { return memory_; }
    int ForeignClients() const override;
    /// Stops the managed server at daemon shutdown and cancels every timer; idempotent.
    /// Ensure() fails afterwards.
    boost::asio::awaitable<void> Shutdown();

    ServerState state() const override { return shown_; }
    SupervisorPhase phase() const { return phase_; }
    /// The endpoint only while the server is running and healthy: what may be shown as live.
    std::optional<ServerEndpoint> Live() const override;
    /// mode, state, pid, url, port, version, uptime, restarts, last_error, healthy, log,
    /// next_restart_in, memory, memory_peak and untracked_servers [{pid, port}] (server.status;
    /// never the password).
    /// Reads /proc for the untracked servers: a few milliseconds.
    boost::json::object StatusJson() const;
    /// The pid of the managed server process while it exists, else 0.
    int managed_pid() const;
    /// The opencode binary the managed server is started with (server.opencode, RALPH_OPENCODE or
    /// `opencode`, found on PATH), or "" with `error` saying how to fix it. `ralph attach` runs it too.
    std::string OpencodeBinary(std::string& error) const;
    /// Where the managed server's stdout and stderr go.
    const std::string& log_path() const { return log_path_; }

    /// Stops begun so far (server stop, restart, idle stop, shutdown), and why the latest one
    /// began: an iteration that saw this change was interrupted by a stop, not failed.
    uint64_t stops_begun() const override { return stops_begun_; }
    const std::string& last_stop_why() const override { return stop_why_; }

    /// Takes the server keys of a reloaded config that apply without a daemon restart (all but
    /// mode, url and password); they apply from the next start. A `fatal` server becomes
    /// `stopped`, so the next need starts it with the new settings.
    void ApplySettings(const ServerSettings& settings);

    /// Called after every state change (the loop engine reacts to loss and to `fatal`).
    void Subscribe(std::function<void(ServerState)> listener) override;

private:
    enum class StartOutcome { Running, Failed, Fatal, Cancelled };
    enum class RunOutcome { Exited, Unhealthy, Cancelled };
    struct HealthCheck {
        bool healthy{false};
        std::string version;
        std::string error;    ///< why not healthy: "connection refused", "HTTP 401: ..."
        int http_status{0};   ///< the HTTP status of a reply that was not healthy (0: none)
    };

    // The phases (server_supervisor.cpp). Enter() is the only writer of phase_ and shown_.
    bool Enter(SupervisorPhase to);
    void Wake();
    /// Waits until pred() holds (true) or the deadline passes (false), waking on every Wake().
    boost::asio::awaitable<bool> WaitUntil(std::function<bool()> pred, Clock::TimePoint deadline);
    boost::asio::awaitable<void> Sleep(Millis d);
    /// WaitUntil without the verdict, for EndingMethod::pause.
    boost::asio::awaitable<void> PauseUntil(std::function<bool()> pred, Clock::TimePoint deadline);
    /// A stop or shutdown began: a start or a health loop gives up.
    bool Cancelled() const { return EndingPhase(phase_); }

    // The HTTP the supervisor speaks: /global/health and /global/dispose.
    boost::asio::awaitable<HealthCheck> CheckHealth(const ServerEndpoint& endpoint);
    boost::asio::awaitable<void> Dispose(const ServerEndpoint& endpoint);

    // Starting and supervising (server_supervise.cpp).
    void BeginSupervising();
    boost::asio::awaitable<void> Supervise();
    boost::asio::awaitable<StartOutcome> StartOnce();
    boost::asio::awaitable<RunOutcome> Monitor(std::shared_ptr<ServerInstance> inst);
    /// memory_ and memory_peak_ from the instance's process group.
    void SampleMemory(const ServerInstance& inst);
    std::shared_ptr<ServerInstance> Launch(const std::string& binary, int port, std::string& error);
    int ChoosePort(const std::set<int>& excluded) const;
    std::string ResolveOpencode(std::string& error) const;
    Millis HealthTimeout() const;

    // Stopping (server_supervisor.cpp).
    boost::asio::awaitable<void> StopManaged(const std::string& why);
    /// Ends the managed server and whatever Supervise() was doing; the phase is Stopping or ShuttingDown.
    boost::asio::awaitable<void> EndServer(const std::string& why);
    boost::asio::awaitable<void> Terminate(std::shared_ptr<ServerInstance> inst, bool dispose);

    // Leftovers (server_leftovers.cpp).
    boost::asio::awaitable<void> KillLeftovers(const std::string& env_entry, std::vector<ProcessToEnd> seen);
    /// ReconcileLeftovers' first step: the server the previous daemon recorded, and its tools.
    boost::asio::awaitable<void> StopRecordedLeftover();
    /// Processes not our children, checked every 20 ms (and on every Wake()).
    EndingMethod EndOthers(bool await_reaping);

    // External mode (server_external.cpp).
    void SetUpExternal();
    boost::asio::awaitable<Result<ServerEndpoint>> EnsureExternal();
    boost::asio::awaitable<void> WatchExternal();

    std::string FatalMessage() const;
    /// `opencode serve` processes of this user other than the managed server (server.status).
    std::vector<OpencodeServerProcess> UntrackedServers() const;
    void Event(const std::string& event, int pid, int port, const std::string& detail);
    void RecordManaged(const std::optional<ManagedServerRecord>& record);
    /// Runs a supervisor coroutine (Supervise, WatchExternal) on the io_context, counted in tasks_.
    void SpawnTask(boost::asio::awaitable<void> task);
    boost::asio::awaitable<void> RunTask(boost::asio::awaitable<void> task);
    /// Thrown inside the supervisor's coroutines when it was destroyed while they were suspended:
    /// unwinds them without touching it.
    struct Gone {};
    static void LogDetached(std::exception_ptr e);

    boost::asio::io_context& io_;
    Clock& clock_;
    ServerSettings settings_;
    RunStore& store_;
    std::string state_dir_;
    std::string log_path_;
    SupervisorHooks hooks_;
    std::shared_ptr<ProcessLauncher> launcher_;
    std::unique_ptr<ProcFs> proc_;
    std::unique_ptr<ServerOutputLog> output_log_;
    RestartPolicy policy_;

    SupervisorPhase phase_{SupervisorPhase::Stopped};
    ServerState shown_{ServerState::Stopped};  ///< what state() shows; follows phase_ (see ShownState)
    bool external_{false};
    ServerEndpoint external_endpoint_;
    std::string external_url_error_;
    bool healthy_{false};  ///< the latest health check passed
    std::string version_;
    std::string last_error_;
    std::string fatal_reason_;  ///< set when fatal for a reason other than the start limit
    int restarts_{0};
    int64_t memory_{0}, memory_peak_{0};  ///< of the current server's process group, bytes
    std::shared_ptr<ServerInstance> current_;
    Clock::TimePoint running_since_{};
    Clock::TimePoint next_restart_at_{};
    int tasks_{0};                 ///< Supervise() or WatchExternal() coroutines under way
    uint64_t stops_begun_{0};      ///< stops begun (stop, restart, idle stop, shutdown)
    std::string stop_why_;         ///< why the latest stop began

    /// What the scans of /proc for untracked servers learnt (reading every process's command line
    /// was most of what run.list cost), forgotten every second; see UntrackedServers.
    mutable ServerScanMemo scan_memo_;
    mutable Clock::TimePoint scan_memo_since_{};

    std::set<boost::asio::steady_timer*> waiters_;
    std::vector<std::function<void(ServerState)>> listeners_;
    std::shared_ptr<bool> alive_{std::make_shared<bool>(true)};
};

}  // namespace ralph
