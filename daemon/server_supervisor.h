// ServerSupervisor: owns the one shared `opencode serve` (SPEC §3), or watches an external one.
// Runs on the daemon's io_context thread; every member is used from that thread only.
//
// Life of the managed server: Ensure() (or Start()) launches it on a free port with a fresh
// password, waits for its "listening" line and a healthy /global/health, then health-checks it
// every health_interval. A crash (noticed through SIGCHLD) or health_failures failed checks in a
// row restart it after an exponential back-off (RestartPolicy); too many starts in
// start_limit_interval make it `fatal` until an explicit Start(). Stop() disposes it, signals its
// process group, and kills whatever tool processes it left (ralphd is a child subreaper).
#pragma once

#include "daemon/config.h"
#include "daemon/opencode_http.h"
#include "daemon/proc_scan.h"
#include "daemon/server_access.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ralph {

class RunStore;
class ProcessLauncher;
struct ManagedServerRecord;

/// When to restart a failed server: the delay doubles from `initial` up to `max`, goes back to
/// `initial` after the server ran `stable` long, and once `burst` starts happened within
/// `interval` there is no further restart (fatal). Pure: the caller passes the time.
class RestartPolicy {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    struct Limits {
        Millis initial{std::chrono::seconds(1)};
        Millis max{std::chrono::seconds(60)};
        int burst{5};
        Millis interval{std::chrono::minutes(5)};
        Millis stable{std::chrono::minutes(1)};
    };

    explicit RestartPolicy(Limits limits);
    /// A start attempt begins now (the first one and every restart).
    void OnStart(TimePoint now);
    /// The server failed now, after running healthy for `up_for` (zero when it never came up).
    /// Returns how long to wait before the next start, or nothing when the start limit is reached.
    std::optional<Millis> OnFailure(TimePoint now, Millis up_for);
    /// An explicit start or stop: forget the history.
    void Reset();
    /// New limits from a reloaded config; the history of starts stays.
    void SetLimits(Limits limits) { limits_ = limits; }
    /// Starts counted in the window ending now.
    int StartsInWindow(TimePoint now) const;
    const Limits& limits() const { return limits_; }

private:
    void Prune(TimePoint now) const;
    Limits limits_;
    mutable std::deque<TimePoint> starts_;
    Millis next_delay_;
};

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
                     const std::string& state_dir);
    ServerSupervisor(boost::asio::io_context& io, const ServerSettings& settings, RunStore& store,
                     const std::string& state_dir, SupervisorHooks hooks);
    ~ServerSupervisor();
    ServerSupervisor(const ServerSupervisor&) = delete;
    ServerSupervisor& operator=(const ServerSupervisor&) = delete;

    /// At daemon start, before serving: stops the server a crashed predecessor left behind (only
    /// that exact process: same pid, same start time, an opencode command line) and its tool
    /// processes, then clears the record; then every process still carrying this state directory
    /// in RALPHD_OWNER (a server started but never recorded, tools of a server that died).
    /// Blocks for at most twice stop_timeout plus a few seconds.
    void ReconcileLeftovers();

    /// The server, started on demand and healthy. Concurrent callers share one start.
    /// Throws RpcError(kServerUnavailable) with a message saying what to do.
    boost::asio::awaitable<ServerEndpoint> Ensure() override;
    /// Explicit start (also clears `fatal` and cuts a back-off short), stop and restart, for
    /// `ralph server ...`. Stop and Restart throw RpcError(kInvalidState) in external mode.
    boost::asio::awaitable<void> Start();
    boost::asio::awaitable<void> Stop() override;
    boost::asio::awaitable<void> Restart();
    /// Stops the managed server at daemon shutdown and cancels every timer; idempotent.
    /// Ensure() fails afterwards.
    boost::asio::awaitable<void> Shutdown();

    ServerState state() const override { return state_; }
    bool external() const { return external_; }
    /// The endpoint only while the server is running and healthy: what may be shown as live.
    std::optional<ServerEndpoint> Live() const override;
    /// mode, state, pid, url, port, version, uptime, restarts, last_error, healthy, log,
    /// next_restart_in and untracked_servers [{pid, port}] (server.status; never the password).
    /// Reads /proc for the untracked servers: a few milliseconds.
    boost::json::object Status() const;
    /// The pid of the managed server process while it exists, else 0.
    int managed_pid() const;
    /// `opencode serve` processes of this user that ralph does not manage (reads /proc).
    std::vector<UntrackedServer> UntrackedServers() const;
    /// The opencode binary the managed server is started with (server.opencode, RALPH_OPENCODE or
    /// `opencode`, found on PATH), or "" with `error` saying how to fix it. `ralph attach` runs it too.
    std::string OpencodeBinary(std::string& error) const { return ResolveOpencode(error); }
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
    struct Instance;
    /// ReconcileLeftovers' first step: the server the previous daemon recorded, and its tools.
    void StopRecordedLeftover();
    struct OutputLog;
    enum class StartOutcome { Running, Failed, Fatal, Cancelled };
    enum class RunOutcome { Exited, Unhealthy, Cancelled };

    void SetState(ServerState s);
    void Wake();
    /// Waits until pred() holds (true) or the deadline passes (false), waking on every Wake().
    boost::asio::awaitable<bool> WaitUntil(std::function<bool()> pred, std::chrono::steady_clock::time_point deadline);
    boost::asio::awaitable<void> Sleep(Millis d);

    void BeginSupervising();
    boost::asio::awaitable<void> Supervise();
    boost::asio::awaitable<StartOutcome> StartOnce();
    boost::asio::awaitable<RunOutcome> Monitor(std::shared_ptr<Instance> inst);
    boost::asio::awaitable<void> Terminate(std::shared_ptr<Instance> inst, bool dispose);
    boost::asio::awaitable<void> KillLeftovers(const std::string& env_marker, std::vector<ProcStat> seen);
    boost::asio::awaitable<void> StopManaged(const std::string& why);
    boost::asio::awaitable<void> WatchExternal();

    boost::asio::awaitable<HttpResult> Http(ServerEndpoint endpoint, boost::beast::http::verb method, std::string target,
                                            Millis timeout);
    boost::asio::awaitable<ServerEndpoint> EnsureExternal();
    std::shared_ptr<Instance> Launch(const std::string& binary, int port, std::string& error);
    void DrainOutput(std::shared_ptr<Instance> inst, int fd, bool is_stdout);
    boost::asio::awaitable<void> ReadOutput(std::shared_ptr<Instance> inst,
                                            std::shared_ptr<boost::asio::posix::stream_descriptor> stream,
                                            bool is_stdout);
    int ChoosePort(const std::set<int>& excluded) const;
    std::string OpencodeName() const;
    /// The opencode binary's path, or "" with `error` saying how to fix it.
    std::string ResolveOpencode(std::string& error) const;
    std::string FatalMessage() const;
    void Event(const std::string& event, int pid, int port, const std::string& detail);
    void RecordManaged(const std::optional<ManagedServerRecord>& record);
    ServerEndpoint EndpointOf(const Instance& inst) const;
    Millis HealthTimeout() const;

    boost::asio::io_context& io_;
    ServerSettings settings_;
    RunStore& store_;
    std::string state_dir_;
    std::string log_path_;
    SupervisorHooks hooks_;
    std::shared_ptr<ProcessLauncher> launcher_;
    std::unique_ptr<ProcFs> proc_;
    std::unique_ptr<OutputLog> output_log_;
    RestartPolicy policy_;

    ServerState state_{ServerState::Stopped};
    bool external_{false};
    ServerEndpoint external_endpoint_;
    std::string external_url_error_;
    bool healthy_{false};
    std::string version_;
    std::string last_error_;
    std::string fatal_reason_;  ///< set when fatal for a reason other than the start limit
    int restarts_{0};
    std::shared_ptr<Instance> current_;
    std::chrono::steady_clock::time_point running_since_{};
    std::chrono::steady_clock::time_point next_restart_at_{};

    bool supervising_{false};      ///< Supervise() is under way
    bool stop_requested_{false};   ///< Supervise() must give up; Stop owns the instance
    bool stopping_{false};         ///< StopManaged() is under way
    bool start_now_{false};        ///< an explicit start cuts the back-off short
    bool shutting_down_{false};
    bool shut_down_{false};
    bool watching_external_{false};
    uint64_t attempt_{0};          ///< start attempts so far
    uint64_t failed_attempt_{0};   ///< the latest attempt that failed
    uint64_t stops_{0};            ///< StopManaged() completions
    uint64_t stops_begun_{0};      ///< StopManaged() beginnings
    std::string stop_why_;         ///< why the latest StopManaged() began

    std::set<boost::asio::steady_timer*> waiters_;
    std::vector<std::function<void(ServerState)>> listeners_;
    std::shared_ptr<bool> alive_{std::make_shared<bool>(true)};
};

}  // namespace ralph
