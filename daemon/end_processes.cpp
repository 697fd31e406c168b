#include "daemon/end_processes.h"

#include "daemon/process.h"

#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <csignal>
#include <unistd.h>

namespace ralph {

namespace asio = boost::asio;

namespace {

constexpr Millis kPollEvery{20};

}  // namespace

asio::awaitable<std::vector<ProcessToEnd>> EndProcesses(std::vector<ProcessToEnd> processes, Millis grace,
                                                        Millis kill_wait, Clock& clock, EndingMethod how)
{
    auto drop_gone = [&] { std::erase_if(processes, [&](const ProcessToEnd& p) { return how.gone(p); }); };
    for (int sig : {SIGTERM, SIGKILL}) {
        drop_gone();
        if (processes.empty()) co_return processes;
        if (sig == SIGKILL && how.before_kill) how.before_kill(processes);
        for (const ProcessToEnd& p : processes) how.signal(p, sig);
        const Clock::TimePoint deadline = clock.Now() + (sig == SIGTERM ? grace : kill_wait);
        for (;;) {
            drop_gone();
            if (processes.empty() || clock.Now() >= deadline) break;
            co_await how.pause(deadline);
        }
    }
    co_return processes;
}

asio::awaitable<void> PollPause(Clock& clock, asio::any_io_executor executor, Clock::TimePoint deadline)
{
    const Clock::TimePoint until = std::min(deadline, clock.Now() + kPollEvery);
    asio::steady_timer timer(executor);
    while (!co_await clock.WaitUntil(timer, until)) {
    }
}

EndingMethod EndByProc(ProcFs proc, Clock& clock, asio::any_io_executor executor, bool await_reaping)
{
    EndingMethod how;
    how.signal = [](const ProcessToEnd& p, int sig) { SignalIfSame(p.pid, p.start_time, sig, true); };
    how.gone = [proc, await_reaping](const ProcessToEnd& p) {
        auto st = proc.Stat(p.pid);
        if (!st || st->start_time != p.start_time) return true;
        if (st->state != 'Z') return false;
        return !await_reaping || st->ppid != getpid();
    };
    how.pause = [&clock, executor](Clock::TimePoint deadline) { return PollPause(clock, executor, deadline); };
    return how;
}

std::vector<ProcessToEnd> ProcessesCarrying(const ProcFs& proc, std::string_view entry, uint64_t started_since)
{
    std::vector<ProcessToEnd> out;
    for (int pid : proc.Pids()) {
        if (pid == getpid()) continue;
        auto st = proc.Stat(pid);
        if (st && st->state != 'Z' && st->start_time >= started_since && proc.EnvironHas(pid, entry))
            out.push_back({pid, st->start_time});
    }
    return out;
}

std::string PidList(const std::vector<ProcessToEnd>& processes)
{
    std::string pids;
    for (const ProcessToEnd& p : processes) pids += (pids.empty() ? "" : " ") + std::to_string(p.pid);
    return pids;
}

}  // namespace ralph
