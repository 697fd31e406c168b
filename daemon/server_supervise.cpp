// ServerSupervisor: starting the managed server, health-checking it, and restarting it after a
// back-off (Supervise). Every wait and deadline is on clock_.
#include "daemon/server_supervisor.h"

#include "common/log.h"
#include "common/paths.h"
#include "daemon/process.h"
#include "daemon/server_output.h"
#include "daemon/store.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

namespace ralph {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Phase = SupervisorPhase;

std::string ServerSupervisor::ResolveOpencode(std::string& error) const
{
    std::string name = settings_.opencode.empty() ? "opencode" : settings_.opencode;
    std::string found = FindExecutable(name, hooks_.path_env.empty() ? GetEnv("PATH") : hooks_.path_env);
    if (found.empty()) {
        // ralphd's environment (PATH, RALPH_OPENCODE) is fixed when it starts: setting them in the
        // user's shell changes nothing here, so name the fixes that work.
        const std::string from_env = GetEnv("RALPH_OPENCODE");
        if (!from_env.empty() && from_env == settings_.opencode) {
            error = "opencode not found at " + name +
                    ": RALPH_OPENCODE in ralphd's environment names it, and that environment is fixed when ralphd "
                    "starts: start ralphd again with RALPH_OPENCODE naming the binary (`ralph daemon stop`, then any "
                    "ralph command), or without it and with server.opencode in ralphd.conf; or install "
                    "opencode-ai@1.18.33";
        } else {
            error = "opencode not found" +
                    (name.find('/') != std::string::npos ? " at " + name : std::string(" on PATH")) +
                    ": set server.opencode in ralphd.conf to the binary's path and run `ralph daemon reload`, or "
                    "install opencode-ai@1.18.33 (ralphd's environment is fixed when it starts: RALPH_OPENCODE or "
                    "PATH set in your shell later need a new ralphd: `ralph daemon stop`, then any ralph command)";
        }
    }
    return found;
}

int ServerSupervisor::ChoosePort(const std::set<int>& excluded) const
{
    std::vector<int> candidates{settings_.port};
    for (int p = settings_.port_min; p <= settings_.port_max; ++p)
        if (p != settings_.port) candidates.push_back(p);
    for (int p : candidates)
        if (p > 0 && !excluded.count(p) && LoopbackPortFree(p)) return p;
    return 0;
}

std::shared_ptr<ServerInstance> ServerSupervisor::Launch(const std::string& binary, int port, std::string& error)
{
    auto inst = std::make_shared<ServerInstance>();
    inst->port = port;
    inst->password = RandomHex(16);
    inst->tag = RandomHex(8);

    LaunchSpec spec;
    spec.program = binary;
    spec.args = {"serve", "--hostname", "127.0.0.1", "--port", std::to_string(port)};
    spec.env = CurrentEnvironment();  // HOME, XDG_*, provider keys: the user's own opencode setup
    UnsetEnv(spec.env, "OPENCODE_SERVER_USERNAME");
    SetEnv(spec.env, "OPENCODE_SERVER_PASSWORD", inst->password);
    SetEnv(spec.env, "OPENCODE_DISABLE_AUTOUPDATE", "1");
    SetEnv(spec.env, kServerTagVariable, inst->tag);
    SetEnv(spec.env, kServerOwnerVariable, state_dir_);
    spec.cwd = state_dir_;

    auto launched = launcher_->Launch(spec);
    if (auto* err = std::get_if<std::string>(&launched)) {
        error = *err;
        return nullptr;
    }
    const LaunchedProcess& child = std::get<LaunchedProcess>(launched);
    inst->pid = child.pid;
    if (auto st = proc_->Stat(child.pid)) inst->start_time = st->start_time;
    output_log_->WriteOwn("started " + binary + " serve --hostname 127.0.0.1 --port " + std::to_string(port) +
                          " (pid " + std::to_string(child.pid) + ")");
    inst->open_streams = 2;
    for (auto [fd, is_stdout] : {std::pair{child.stdout_fd, true}, std::pair{child.stderr_fd, false}}) {
        auto stream = std::make_shared<asio::posix::stream_descriptor>(io_, fd);
        inst->streams.push_back(stream);
        asio::co_spawn(io_, ReadServerOutput(inst, stream, is_stdout, *output_log_, [this] { Wake(); }, alive_),
                       LogDetached);
    }
    auto alive = alive_;
    launcher_->WatchExit(child.pid, [this, alive, inst](ExitStatus status) {
        if (!*alive) return;
        inst->exited = true;
        inst->exit = status;
        if (current_ == inst) healthy_ = false;  // noticed at once: no longer live
        Wake();
    });
    return inst;
}

void ServerSupervisor::BeginSupervising()
{
    Enter(Phase::Starting);
    SpawnTask(Supervise());
}

asio::awaitable<ServerSupervisor::StartOutcome> ServerSupervisor::StartOnce()
{
    policy_.OnStart(clock_.Now());
    std::string error;
    std::string binary = ResolveOpencode(error);
    if (binary.empty()) {
        fatal_reason_ = last_error_ = error;
        co_return StartOutcome::Fatal;
    }
    std::set<int> busy;
    for (int tries = 0; tries < 10; ++tries) {
        if (Cancelled()) co_return StartOutcome::Cancelled;
        int port = ChoosePort(busy);
        if (port == 0) {
            last_error_ = "no free port among " + std::to_string(settings_.port) + " and " +
                          std::to_string(settings_.port_min) + "-" + std::to_string(settings_.port_max) +
                          "; set server.port or server.port_range in ralphd.conf";
            co_return StartOutcome::Failed;
        }
        const auto launched_at = clock_.Now();
        auto inst = Launch(binary, port, error);
        if (!inst) {
            last_error_ = error;
            co_return StartOutcome::Failed;
        }
        current_ = inst;
        // Recorded at once: should ralphd die during the start, its successor still finds it.
        RecordManaged(ManagedServerRecord{inst->pid, inst->start_time, port, NowMillis()});
        Event("starting", inst->pid, port, "");
        const auto deadline = launched_at + hooks_.start_timeout;
        co_await WaitUntil([&] { return inst->listening || inst->exited || Cancelled(); }, deadline);
        if (Cancelled()) co_return StartOutcome::Cancelled;

        if (inst->exited) {
            // Read what it printed last before judging why it went.
            co_await WaitUntil([&] { return inst->open_streams == 0; }, clock_.Now() + seconds(2));
            std::string output = inst->RecentOutput();
            current_.reset();
            co_await KillLeftovers(inst->TagEntry(), {});
            if (!inst->listening && output.find("ServeError") != std::string::npos) {
                Event("port_busy", inst->pid, port, "opencode could not listen on the port; trying another");
                busy.insert(port);
                continue;
            }
            last_error_ = "opencode " + inst->exit.Describe() + (inst->listening ? " right after listening" : " before listening") +
                          (output.empty() ? "" : ": " + output);
            co_return StartOutcome::Failed;
        }
        if (!inst->listening) {
            last_error_ = "opencode did not print its listening line within " + FormatDuration(hooks_.start_timeout);
            co_await Terminate(inst, false);
            current_.reset();
            co_return StartOutcome::Failed;
        }

        // Listening: now an authenticated /global/health must say healthy.
        HealthCheck health;
        for (;;) {
            health = co_await CheckHealth(inst->Endpoint());
            if (Cancelled()) co_return StartOutcome::Cancelled;
            if (health.healthy || inst->exited || clock_.Now() >= deadline) break;
            co_await Sleep(milliseconds(100));
        }
        if (!health.healthy) {
            last_error_ = inst->exited ? "opencode " + inst->exit.Describe() + " right after listening"
                                       : "/global/health did not say healthy: " + health.error;
            co_await Terminate(inst, false);
            current_.reset();
            co_return StartOutcome::Failed;
        }
        version_ = health.version;
        healthy_ = true;
        SampleMemory(*inst);
        RecordManaged(ManagedServerRecord{inst->pid, inst->start_time, inst->port, NowMillis()});
        Event("started", inst->pid, inst->port,
              "version " + version_ + ", healthy after " +
                  std::to_string(std::chrono::duration_cast<milliseconds>(clock_.Now() - launched_at).count()) + " ms");
        co_return StartOutcome::Running;
    }
    last_error_ = "opencode could not listen on any of the ports tried; see " + log_path_;
    co_return StartOutcome::Failed;
}

asio::awaitable<void> ServerSupervisor::Supervise()
{
    for (;;) {
        if (Cancelled()) break;
        Enter(Phase::Starting);  // already there for the first start, and after an explicit one
        StartOutcome outcome = co_await StartOnce();
        if (outcome == StartOutcome::Cancelled || Cancelled()) break;
        if (outcome == StartOutcome::Fatal) {
            Event("fatal", 0, 0, FatalMessage());
            Enter(Phase::Fatal);
            break;
        }

        Millis up_for{0};
        std::shared_ptr<ServerInstance> inst;
        RunOutcome ended = RunOutcome::Exited;
        if (outcome == StartOutcome::Running) {
            inst = current_;
            running_since_ = clock_.Now();
            Enter(Phase::Running);
            ended = co_await Monitor(inst);
            if (ended == RunOutcome::Cancelled || Cancelled()) break;
            up_for = std::chrono::duration_cast<Millis>(clock_.Now() - running_since_);
            if (ended == RunOutcome::Unhealthy) {
                Event("unhealthy", inst->pid, inst->port, last_error_);
                Enter(Phase::Unhealthy);
                co_await Terminate(inst, false);
                if (Cancelled()) break;
            } else {
                std::string output = inst->RecentOutput(2);
                last_error_ = "opencode " + inst->exit.Describe() + " after running " + FormatDuration(up_for) +
                              (output.empty() ? "" : " (last output: " + output + ")");
                Event("exited", inst->pid, inst->port, last_error_);
            }
            RecordManaged(std::nullopt);
        } else {
            RecordManaged(std::nullopt);
            Event("start_failed", 0, 0, last_error_);
        }

        auto delay = policy_.OnFailure(clock_.Now(), up_for);
        if (!delay) {
            fatal_reason_.clear();
            Event("fatal", 0, 0, FatalMessage());
            Enter(Phase::Fatal);
        } else {
            next_restart_at_ = clock_.Now() + *delay;
            Enter(inst ? Phase::BackoffServerEnded : Phase::BackoffStartFailed);
        }
        if (inst && ended == RunOutcome::Exited) {
            // It died on its own: its tool processes are ours now (subreaper); end them.
            co_await KillLeftovers(inst->TagEntry(), {});
        }
        if (current_ == inst) current_.reset();
        if (!delay) break;
        // Until the back-off ends, an explicit start cuts it short (Starting), or a stop begins.
        co_await WaitUntil([&] { return phase_ != Phase::BackoffStartFailed && phase_ != Phase::BackoffServerEnded; },
                           next_restart_at_);
        if (Cancelled()) break;
        ++restarts_;
    }
}

asio::awaitable<ServerSupervisor::RunOutcome> ServerSupervisor::Monitor(std::shared_ptr<ServerInstance> inst)
{
    int failures = 0;
    auto next = clock_.Now() + settings_.health_interval;
    for (;;) {
        co_await WaitUntil([&] { return Cancelled() || inst->exited; }, next);
        if (Cancelled()) co_return RunOutcome::Cancelled;
        if (inst->exited) co_return RunOutcome::Exited;
        // A fixed cadence: a slow check does not push the next one back.
        next += settings_.health_interval;
        if (next < clock_.Now()) next = clock_.Now() + settings_.health_interval;
        HealthCheck check = co_await CheckHealth(inst->Endpoint());
        if (Cancelled()) co_return RunOutcome::Cancelled;
        if (inst->exited) co_return RunOutcome::Exited;
        if (check.healthy) {
            failures = 0;
            if (!check.version.empty()) version_ = check.version;
            SampleMemory(*inst);
            if (!healthy_) {
                healthy_ = true;
                Log(LogLevel::Info) << "opencode server is healthy again";
                Wake();
            }
            continue;
        }
        ++failures;
        healthy_ = false;
        last_error_ = "health check " + std::to_string(failures) + "/" + std::to_string(settings_.health_failures) +
                      " failed: " + check.error;
        Log(LogLevel::Warning) << "opencode server (pid " << inst->pid << "): " << last_error_;
        Wake();
        if (failures >= settings_.health_failures) co_return RunOutcome::Unhealthy;
    }
}

void ServerSupervisor::SampleMemory(const ServerInstance& inst)
{
    // With each health check (SPEC §8): the server and the tool processes in its process group.
    memory_ = proc_->GroupRss(inst.pid);
    memory_peak_ = std::max(memory_peak_, memory_);
}

}  // namespace ralph
