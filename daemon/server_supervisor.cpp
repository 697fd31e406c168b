// ServerSupervisor: the phases, the public operations, status and stopping. Starting and
// health-checking are in server_supervise.cpp, external mode in server_external.cpp, leftovers in
// server_leftovers.cpp.
#include "daemon/server_supervisor.h"


#include "common/errors.h"
#include "common/log.h"
#include "daemon/opencode_client.h"
#include "daemon/process.h"
#include "daemon/server_output.h"
#include "daemon/store.h"

#include <boost/asio/co_spawn.hpp>

#include <algorithm>
#include <unistd.h>

namespace ralph {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Phase = SupervisorPhase;

namespace {

const auto kForever = Clock::TimePoint::max();
constexpr const char* kShuttingDown = "ralphd is shutting down; the opencode server is not available";

double SecondsBetween(Clock::TimePoint a, Clock::TimePoint b) { return std::chrono::duration<double>(b - a).count(); }

bool ShuttingDown(Phase p) { return p == Phase::ShuttingDown || p == Phase::ShutDown; }

bool InBackoff(Phase p) { return p == Phase::BackoffStartFailed || p == Phase::BackoffServerEnded; }

}  // namespace

ServerSupervisor::ServerSupervisor(asio::io_context& io, const ServerSettings& settings, RunStore& store,
                                   const std::string& state_dir, SupervisorHooks hooks, Clock& clock)
    : io_(io),
      clock_(clock),
      settings_(settings),
      store_(store),
      state_dir_(state_dir),
      log_path_(state_dir + "/opencode-server.log"),
      hooks_(std::move(hooks)),
      proc_(std::make_unique<ProcFs>(hooks_.proc_root)),
      output_log_(std::make_unique<ServerOutputLog>(log_path_)),
      policy_(RestartPolicy::Limits{hooks_.initial_backoff, settings.restart_backoff_max, settings.start_limit_burst,
                                    settings.start_limit_interval, hooks_.stable_after})
{
    if (hooks_.launcher) {
        launcher_ = hooks_.launcher;
    } else {
        launcher_ = std::make_shared<PosixLauncher>(io_);
        // Tool processes opencode starts in their own sessions come back to us when it dies.
        BecomeChildSubreaper();
    }
    if (settings_.mode == "external") SetUpExternal();
}

ServerSupervisor::~ServerSupervisor()
{
    *alive_ = false;
    if (current_) current_->CloseStreams();
    for (auto* t : waiters_) t->cancel();
}

void ServerSupervisor::LogDetached(std::exception_ptr e)
{
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const Gone&) {
    } catch (const std::exception& x) {
        Log(LogLevel::Error) << "server supervisor: unexpected error: " << x.what();
    }
}

void ServerSupervisor::SpawnTask(asio::awaitable<void> task)
{
    ++tasks_;  // counted from now: a stop that follows at once waits for it
    asio::co_spawn(io_, RunTask(std::move(task)), LogDetached);
}

asio::awaitable<void> ServerSupervisor::RunTask(asio::awaitable<void> task)
{
    struct Done {
        ServerSupervisor* self;
        std::shared_ptr<bool> alive;
        ~Done()
        {
            if (!*alive) return;
            --self->tasks_;
            self->Wake();
        }
    } done{this, alive_};
    co_await std::move(task);
}

// ---------------------------------------------------------------------------------------------
// Phases

void ServerSupervisor::Subscribe(std::function<void(ServerState)> listener) { listeners_.push_back(std::move(listener)); }

bool ServerSupervisor::Enter(Phase to)
{
    if (to == phase_) return true;
    if (!TransitionAllowed(phase_, to)) {
        Log(LogLevel::Error) << "server supervisor: no transition from " << SupervisorPhaseName(phase_) << " to "
                             << SupervisorPhaseName(to);
        return false;
    }
    phase_ = to;
    Wake();
    std::optional<ServerState> shown = ShownState(to, external_);
    if (!shown || *shown == shown_) return true;
    Log(*shown == ServerState::Fatal ? LogLevel::Error : LogLevel::Info)
        << "opencode server: " << ServerStateName(shown_) << " -> " << ServerStateName(*shown);
    shown_ = *shown;
    auto listeners = listeners_;  // a listener may subscribe another
    for (auto& l : listeners) {
        try {
            l(shown_);
        } catch (const std::exception& e) {
            Log(LogLevel::Error) << "server state listener failed: " << e.what();
        }
    }
    return true;
}

void ServerSupervisor::Wake()
{
    for (auto* t : waiters_) t->cancel();
}

asio::awaitable<bool> ServerSupervisor::WaitUntil(std::function<bool()> pred, Clock::TimePoint deadline)
{
    auto alive = alive_;
    for (;;) {
        if (pred()) co_return true;
        if (clock_.Now() >= deadline) co_return false;
        asio::steady_timer timer(io_);
        waiters_.insert(&timer);
        co_await clock_.WaitUntil(timer, deadline);
        if (!*alive) throw Gone{};
        waiters_.erase(&timer);
    }
}

asio::awaitable<void> ServerSupervisor::PauseUntil(std::function<bool()> pred, Clock::TimePoint deadline)
{
    co_await WaitUntil(std::move(pred), deadline);
}

asio::awaitable<void> ServerSupervisor::Sleep(Millis d)
{
    co_await WaitUntil([] { return false; }, clock_.Now() + d);
}

// ---------------------------------------------------------------------------------------------
// What the supervisor asks opencode over HTTP

Millis ServerSupervisor::HealthTimeout() const
{
    return std::clamp<Millis>(settings_.health_interval / 2, milliseconds(100), seconds(5));
}

asio::awaitable<ServerSupervisor::HealthCheck> ServerSupervisor::CheckHealth(const ServerEndpoint& endpoint)
{
    auto alive = alive_;
    Result<std::string> version = co_await OpencodeHealth(endpoint, HealthTimeout());
    if (!*alive) throw Gone{};
    HealthCheck check;
    if (version) {
        check.healthy = true;
        check.version = *version;
    } else {
        check.error = version.status().message();
        check.http_status = version.status().http_status();
    }
    co_return check;
}

asio::awaitable<void> ServerSupervisor::Dispose(const ServerEndpoint& endpoint)
{
    auto alive = alive_;
    ralph::Status disposed = co_await OpencodeDisposeAll(endpoint, seconds(3));
    if (!*alive) throw Gone{};
    if (!disposed.ok()) Log(LogLevel::Info) << "POST /global/dispose: " << disposed.message();
}

// ---------------------------------------------------------------------------------------------
// Records

void ServerSupervisor::Event(const std::string& event, int pid, int port, const std::string& detail)
{
    Log(event == "fatal" || event == "start_failed" ? LogLevel::Warning : LogLevel::Info)
        << "opencode server " << event << (pid ? " pid " + std::to_string(pid) : "")
        << (port ? " port " + std::to_string(port) : "") << (detail.empty() ? "" : ": " + detail);
    output_log_->WriteOwn(event + (pid ? " pid " + std::to_string(pid) : "") + (detail.empty() ? "" : ": " + detail));
    try {
        store_.RecordServerEvent(event, pid, port, detail, NowMillis());
    } catch (const std::exception& e) {
        Log(LogLevel::Error) << "cannot record the server event '" << event << "': " << e.what();
    }
}

void ServerSupervisor::RecordManaged(const std::optional<ManagedServerRecord>& record)
{
    try {
        store_.SetManagedServer(record);
    } catch (const std::exception& e) {
        Log(LogLevel::Error) << "cannot record the managed server: " << e.what();
    }
}

std::string ServerSupervisor::FatalMessage() const
{
    if (!fatal_reason_.empty()) return fatal_reason_;
    return "the opencode server failed " + std::to_string(settings_.start_limit_burst) + " times in " +
           FormatDuration(settings_.start_limit_interval) + (last_error_.empty() ? "" : " (last: " + last_error_ + ")") +
           "; see " + log_path_ + "; run `ralph server start` to try again";
}

// ---------------------------------------------------------------------------------------------
// Status

std::optional<ServerEndpoint> ServerSupervisor::Live() const
{
    if (external_) {
        if (healthy_ && external_url_error_.empty()) return external_endpoint_;
        return std::nullopt;
    }
    if (shown_ == ServerState::Running && healthy_ && current_ && !current_->exited) return current_->Endpoint();
    return std::nullopt;
}

std::vector<OpencodeServerProcess> ServerSupervisor::UntrackedServers() const
{
    // Every scan looks at every process (listing /proc again only when the kernel has handed out
    // a pid since the last scan), but reads again only the command lines of those it has not seen
    // yet: servers are checked each time (one that ended is never listed); a process that became
    // a server by exec, keeping its pid, and a new server's port show within a second. Should
    // /proc/loadavg lie about the last pid (a container's virtual file), forgetting the memo every
    // second bounds that too.
    if (clock_.Now() - scan_memo_since_ >= std::chrono::seconds(1)) {
        scan_memo_ = {};
        scan_memo_since_ = clock_.Now();
    }
    std::vector<OpencodeServerProcess> out;
    const int managed = managed_pid();
    for (const OpencodeServerProcess& p : proc_->FindOpencodeServers(getuid(), &scan_memo_))
        if (p.pid != managed) out.push_back(p);
    return out;
}

json::object ServerSupervisor::StatusJson() const
{
    json::object o;
    o["mode"] = external_ ? "external" : "managed";
    o["state"] = ServerStateName(shown_);
    o["pid"] = nullptr;
    o["url"] = nullptr;
    o["port"] = nullptr;
    o["version"] = version_.empty() ? json::value(nullptr) : json::value(version_);
    o["uptime"] = nullptr;
    o["restarts"] = restarts_;
    o["last_error"] = last_error_.empty() ? json::value(nullptr) : json::value(last_error_);
    o["healthy"] = false;
    o["next_restart_in"] = nullptr;
    json::array untracked;
    for (const OpencodeServerProcess& p : UntrackedServers())
        untracked.push_back(json::object{{"pid", p.pid}, {"port", p.port ? json::value(p.port) : json::value(nullptr)}});
    o["untracked_servers"] = std::move(untracked);
    if (external_) {
        o["url"] = settings_.url;
        if (external_url_error_.empty()) o["port"] = external_endpoint_.port;
        o["healthy"] = healthy_;
        return o;
    }
    o["log"] = log_path_;
    if (current_ && !current_->exited) {
        o["pid"] = current_->pid;
        o["port"] = current_->port;
        if (current_->listening) o["url"] = current_->Endpoint().url();
    }
    o["memory"] = memory_ ? json::value(memory_) : json::value(nullptr);
    o["memory_peak"] = memory_peak_ ? json::value(memory_peak_) : json::value(nullptr);
    if (shown_ == ServerState::Running) {
        o["healthy"] = healthy_;
        o["uptime"] = SecondsBetween(running_since_, clock_.Now());
    }
    if (shown_ == ServerState::Backoff)
        o["next_restart_in"] = std::max(0.0, SecondsBetween(clock_.Now(), next_restart_at_));
    return o;
}

int ServerSupervisor::managed_pid() const { return current_ && !current_->exited ? current_->pid : 0; }

std::string ServerSupervisor::OpencodeBinary(std::string& error) const { return ResolveOpencode(error); }

// ---------------------------------------------------------------------------------------------
// The public operations

asio::awaitable<Result<ServerEndpoint>> ServerSupervisor::Ensure()
{
    if (ShuttingDown(phase_)) co_return Status(kServerUnavailable, kShuttingDown);
    if (external_) co_return co_await EnsureExternal();
    bool waiting_on_start = false;  // this call saw a start under way and waits for its outcome
    const uint64_t stops = stops_begun_;
    // A stop that cancelled the start we waited for is not undone behind the user's back.
    auto stopped_meanwhile = [&] { return waiting_on_start && stops_begun_ != stops; };
    const Status stopped(kServerUnavailable, "the opencode server was stopped while it was starting (ralph server stop)");
    for (;;) {
        if (ShuttingDown(phase_)) co_return Status(kServerUnavailable, kShuttingDown);
        switch (phase_) {
        case Phase::Stopping:
            co_await WaitUntil([&] { return phase_ != Phase::Stopping; }, kForever);
            if (stopped_meanwhile()) co_return stopped;
            continue;
        case Phase::Stopped:
            if (stopped_meanwhile()) co_return stopped;
            BeginSupervising();
            continue;
        case Phase::Running:
            if (healthy_ && current_ && !current_->exited) co_return current_->Endpoint();
            break;  // a health check failed: wait for the next verdict
        case Phase::Fatal:
            co_return Status(kServerUnavailable, FatalMessage());
        case Phase::Starting:
            waiting_on_start = true;
            break;
        case Phase::BackoffStartFailed:
            if (waiting_on_start) {
                Millis left = std::max<Millis>(Millis(0), std::chrono::duration_cast<Millis>(next_restart_at_ - clock_.Now()));
                co_return Status(kServerUnavailable, "the opencode server did not start: " + last_error_ +
                                                         "; ralphd tries again in " + FormatDuration(left) + " (see " +
                                                         log_path_ + ")");
            }
            break;
        case Phase::Unhealthy:
        case Phase::BackoffServerEnded:
        case Phase::ShuttingDown:
        case Phase::ShutDown:
        case Phase::External:
            break;
        }
        const Phase seen = phase_;
        const bool healthy = healthy_;
        co_await WaitUntil([&] { return phase_ != seen || healthy_ != healthy; }, kForever);
    }
}

asio::awaitable<Status> ServerSupervisor::Start()
{
    if (external_) co_return (co_await Ensure()).status();
    if (ShuttingDown(phase_)) co_return Status(kServerUnavailable, "ralphd is shutting down");
    if (phase_ == Phase::Stopping) co_await WaitUntil([&] { return phase_ != Phase::Stopping; }, kForever);
    if (phase_ == Phase::Fatal) {
        // An explicit start clears `fatal` and the start-limit history.
        policy_.Reset();
        fatal_reason_.clear();
        restarts_ = 0;
        Event("explicit_start", 0, 0, "after fatal");
        Enter(Phase::Stopped);
    } else if (InBackoff(phase_)) {
        Enter(Phase::Starting);  // cuts the back-off short: Supervise() goes on at once
    }
    co_return (co_await Ensure()).status();
}

asio::awaitable<Status> ServerSupervisor::Stop()
{
    if (external_)
        co_return Status(kInvalidState, "server.mode is external: ralph does not start or stop the server at " +
                                            settings_.url + "; stop it where it was started");
    co_await StopManaged("stop requested");
    co_return Status::Ok();
}

asio::awaitable<Status> ServerSupervisor::Restart() { co_return co_await Restart("restart requested"); }

asio::awaitable<Status> ServerSupervisor::Restart(const std::string& why)
{
    if (external_)
        co_return Status(kInvalidState, "server.mode is external: ralph does not restart the server at " +
                                            settings_.url + "; restart it where it was started");
    co_await StopManaged(why);
    co_return co_await Start();
}

int ServerSupervisor::ForeignClients() const
{
    if (external_ || !current_ || current_->exited || !current_->listening) return 0;
    return proc_->ForeignConnections(current_->port, getpid());
}

void ServerSupervisor::ApplySettings(const ServerSettings& settings)
{
    const ServerSettings kept = settings_;
    settings_ = settings;
    settings_.mode = kept.mode;  // external mode is set up when ralphd starts
    settings_.url = kept.url;
    settings_.password = kept.password;
    RestartPolicy::Limits limits = policy_.limits();
    limits.max = settings_.restart_backoff_max;
    limits.burst = settings_.start_limit_burst;
    limits.interval = settings_.start_limit_interval;
    policy_.SetLimits(limits);
    if (phase_ == Phase::Fatal) {
        policy_.Reset();
        fatal_reason_.clear();
        restarts_ = 0;
        Event("config_reloaded", 0, 0, "after fatal: the next need starts the server again");
        Enter(Phase::Stopped);
    }
}

asio::awaitable<void> ServerSupervisor::Shutdown()
{
    for (;;) {
        if (phase_ == Phase::ShutDown) co_return;
        if (phase_ == Phase::ShuttingDown) {
            co_await WaitUntil([&] { return phase_ == Phase::ShutDown; }, kForever);
            co_return;
        }
        if (phase_ != Phase::Stopping) break;
        co_await WaitUntil([&] { return phase_ != Phase::Stopping; }, kForever);
    }
    Enter(Phase::ShuttingDown);
    if (!external_) co_await EndServer("daemon shutdown");
    co_await WaitUntil([&] { return tasks_ == 0; }, clock_.Now() + seconds(10));
    Enter(Phase::ShutDown);
}

// ---------------------------------------------------------------------------------------------
// Stopping

asio::awaitable<void> ServerSupervisor::StopManaged(const std::string& why)
{
    if (EndingPhase(phase_)) {  // join the stop (or shutdown) under way
        co_await WaitUntil([&] { return phase_ != Phase::Stopping && phase_ != Phase::ShuttingDown; }, kForever);
        co_return;
    }
    Enter(Phase::Stopping);
    co_await EndServer(why);
    Enter(Phase::Stopped);
}

asio::awaitable<void> ServerSupervisor::EndServer(const std::string& why)
{
    ++stops_begun_;
    stop_why_ = why;
    Wake();
    int pid = 0, port = 0;
    std::set<int> ports;  // every port a stopped instance listened on
    for (int round = 0; round < 3; ++round) {  // Supervise may have launched one more meanwhile
        if (auto inst = current_) {
            if (!inst->exited) pid = inst->pid, port = inst->port;
            if (inst->listening) ports.insert(inst->port);
            co_await Terminate(inst, true);
            if (current_ == inst) current_.reset();
        }
        co_await WaitUntil([&] { return tasks_ == 0; }, kForever);
        if (!current_) break;
    }
    // A stop is reported once the port is closed too (SPEC §7), so the next start can have it.
    for (int p : ports) {
        auto deadline = clock_.Now() + seconds(5);
        while (!LoopbackPortFree(p) && clock_.Now() < deadline) co_await Sleep(milliseconds(20));
        if (!LoopbackPortFree(p)) Log(LogLevel::Warning) << "port " << p << " still listens after the opencode server stopped";
    }
    healthy_ = false;
    memory_ = 0;  // of the server that was; the next one is sampled anew
    RecordManaged(std::nullopt);
    policy_.Reset();
    fatal_reason_.clear();
    restarts_ = 0;
    if (pid) Event("stopped", pid, port, why);
}

asio::awaitable<void> ServerSupervisor::Terminate(std::shared_ptr<ServerInstance> inst, bool dispose)
{
    std::vector<ProcessToEnd> seen;
    if (!inst->exited && dispose && inst->listening) {
        // Aborts the sessions and kills their tool processes, which a signal would orphan.
        co_await Dispose(inst->Endpoint());
    }
    if (!inst->exited) {
        for (const ProcStat& s : proc_->Descendants(inst->pid)) seen.push_back({s.pid, s.start_time});
        // Our own child: signalled through the launcher, gone once reaped.
        EndingMethod how;
        how.signal = [this](const ProcessToEnd& p, int sig) { launcher_->SignalGroup(p.pid, sig); };
        how.gone = [inst](const ProcessToEnd&) { return inst->exited; };
        how.pause = [this, inst](Clock::TimePoint deadline) { return PauseUntil([inst] { return inst->exited; }, deadline); };
        how.before_kill = [this, inst](const std::vector<ProcessToEnd>&) {
            Log(LogLevel::Warning) << "opencode server (pid " << inst->pid << ") ignored SIGTERM for "
                                   << FormatDuration(settings_.stop_timeout) << "; sending SIGKILL";
        };
        std::vector<ProcessToEnd> server{{inst->pid, inst->start_time}};
        auto left = co_await EndProcesses(std::move(server), settings_.stop_timeout, seconds(5), clock_, how);
        if (!left.empty()) Log(LogLevel::Error) << "opencode server (pid " << inst->pid << ") survived SIGKILL for 5s";
    }
    co_await KillLeftovers(inst->TagEntry(), std::move(seen));
    inst->CloseStreams();
}

}  // namespace ralph
