// ServerSupervisor: what a server leaves behind. The tool processes of a server that stopped or
// died (KillLeftovers), and, at daemon start, the server and processes a crashed predecessor left
// running (ReconcileLeftovers). All of them are ended by EndProcesses (end_processes.h).
#include "daemon/server_supervisor.h"

#include "common/log.h"
#include "daemon/process.h"
#include "daemon/server_output.h"
#include "daemon/store.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <unistd.h>

namespace ralph {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

/// Adds the processes of `more` that `to` does not hold yet.
void AddNew(std::vector<ProcessToEnd>& to, const std::vector<ProcessToEnd>& more, int except_pid = 0)
{
    for (const ProcessToEnd& p : more) {
        if (p.pid == except_pid) continue;
        if (std::none_of(to.begin(), to.end(), [&](const ProcessToEnd& q) { return q.pid == p.pid; })) to.push_back(p);
    }
    std::sort(to.begin(), to.end(), [](const ProcessToEnd& a, const ProcessToEnd& b) { return a.pid < b.pid; });
}

}  // namespace

EndingMethod ServerSupervisor::EndOthers(bool await_reaping)
{
    EndingMethod how = EndByProc(*proc_, clock_, io_.get_executor(), await_reaping);
    // Checks every 20 ms; the supervisor's own wait, so that its destruction ends this one too.
    how.pause = [this](Clock::TimePoint deadline) {
        return PauseUntil([] { return false; }, std::min(deadline, clock_.Now() + milliseconds(20)));
    };
    return how;
}

asio::awaitable<void> ServerSupervisor::KillLeftovers(const std::string& env_entry, std::vector<ProcessToEnd> seen)
{
    // Processes descending from the server (seen before it was signalled) and any process that
    // carries its marker in the environment: tool processes in their own sessions, orphans.
    std::vector<ProcessToEnd> victims;
    AddNew(victims, seen);
    AddNew(victims, ProcessesCarrying(*proc_, env_entry));
    EndingMethod how = EndOthers(true);  // a zombie of ours is about to be reaped by the SIGCHLD handler: wait for that
    std::erase_if(victims, [&](const ProcessToEnd& p) { return how.gone(p); });
    if (victims.empty()) co_return;
    const std::string pids = PidList(victims);
    Log(LogLevel::Info) << "ending " << victims.size() << " process(es) the opencode server left: " << pids;
    output_log_->WriteOwn("ending processes the server left: " + pids);
    auto left = co_await EndProcesses(std::move(victims), milliseconds(1000), milliseconds(3000), clock_, how);
    if (!left.empty()) Log(LogLevel::Error) << "processes left by the opencode server survived SIGKILL: " << PidList(left);
}

void ServerSupervisor::ReconcileLeftovers()
{
    // On an io_context of its own: nothing else runs meanwhile.
    asio::io_context local;
    auto done = asio::co_spawn(local, ReconcileAsync(), asio::use_future);
    local.run();
    done.get();
}

asio::awaitable<void> ServerSupervisor::ReconcileAsync()
{
    co_await StopRecordedLeftover();
    // A daemon killed between starting a server and recording it leaves one nobody recorded; and
    // a server that died leaves its tools. Both carry our state directory in their environment,
    // and nothing of ours runs yet: whatever carries it now is a leftover.
    std::vector<ProcessToEnd> victims;
    AddNew(victims, ProcessesCarrying(*proc_, std::string(kServerOwnerVariable) + "=" + state_dir_));
    if (victims.empty()) co_return;
    const std::string pids = PidList(victims);
    Log(LogLevel::Warning) << "stopping processes a previous ralphd left without a record (pids " << pids << ")";
    auto how = EndByProc(*proc_, clock_, co_await asio::this_coro::executor, false);
    auto left = co_await EndProcesses(std::move(victims), settings_.stop_timeout, seconds(5), clock_, how);
    if (!left.empty()) Log(LogLevel::Error) << "leftover processes survived SIGKILL: " << left.size();
    Event("leftover_stopped", 0, 0, "unrecorded processes of a previous ralphd: pids " + pids);
}

asio::awaitable<void> ServerSupervisor::StopRecordedLeftover()
{
    std::optional<ManagedServerRecord> record;
    try {
        record = store_.GetManagedServer();
    } catch (const std::exception& e) {
        Log(LogLevel::Error) << "cannot read the managed server record: " << e.what();
        co_return;
    }
    if (!record) co_return;
    auto st = proc_->Stat(record->pid);
    std::string cmdline;
    for (const std::string& a : proc_->Cmdline(record->pid)) cmdline += (cmdline.empty() ? "" : " ") + a;
    bool same = st && st->state != 'Z' && st->start_time == record->start_time &&
                cmdline.find("opencode") != std::string::npos;
    if (!same) {
        Log(LogLevel::Info) << "the opencode server a previous ralphd started (pid " << record->pid
                            << ") is gone; pid " << record->pid << (st ? " now belongs to another process" : " is free");
        Event("leftover_gone", record->pid, record->port, "");
        RecordManaged(std::nullopt);
        co_return;
    }
    Log(LogLevel::Warning) << "stopping the opencode server a previous ralphd left running (pid " << record->pid
                           << ", port " << record->port << ")";
    // Its tool processes: descendants now, and whatever carries OPENCODE_PID=<pid> and started after it.
    std::vector<ProcessToEnd> tools;
    for (const ProcStat& d : proc_->Descendants(record->pid)) tools.push_back({d.pid, d.start_time});
    AddNew(tools, ProcessesCarrying(*proc_, "OPENCODE_PID=" + std::to_string(record->pid), record->start_time),
           record->pid);
    // Its password went with the previous daemon, so no dispose: SIGTERM, then SIGKILL.
    auto executor = co_await asio::this_coro::executor;
    auto how = EndByProc(*proc_, clock_, executor, false);
    std::vector<ProcessToEnd> server{{record->pid, record->start_time}};
    auto left = co_await EndProcesses(std::move(server), settings_.stop_timeout, seconds(5), clock_, how);
    if (!left.empty()) Log(LogLevel::Error) << "the leftover opencode server (pid " << record->pid << ") survived SIGKILL";
    // Its leader shows as a zombie while its other threads, which share the listening socket,
    // still exit: wait for the port too, so the new server can have it.
    for (auto deadline = clock_.Now() + seconds(3); !LoopbackPortFree(record->port) && clock_.Now() < deadline;)
        co_await PollPause(clock_, executor, deadline);
    co_await EndProcesses(std::move(tools), seconds(1), seconds(1), clock_, how);
    Event("leftover_stopped", record->pid, record->port, "left running by a previous ralphd");
    RecordManaged(std::nullopt);
}

}  // namespace ralph
