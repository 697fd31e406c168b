// Ending processes: the one SIGTERM → grace period → SIGKILL routine ralphd uses for the managed
// server (stop, restart, unhealthy), for the tool processes a server left, and for what a crashed
// predecessor left running (reconcile). Only the way a process is signalled and seen gone differs:
// our own child through the ProcessLauncher; anything else by pid and start time through /proc.
#pragma once

#include "common/clock.h"
#include "common/duration.h"
#include "daemon/proc_scan.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace ralph {

/// A process to end, named by its pid and start time: a pid reused meanwhile is never signalled.
struct ProcessToEnd {
    int pid{0};
    uint64_t start_time{0};
};

/// How EndProcesses signals a process and tells that it has gone.
struct EndingMethod {
    std::function<void(const ProcessToEnd&, int sig)> signal;
    std::function<bool(const ProcessToEnd&)> gone;
    /// Returns at `deadline` at the latest, or as soon as something may have changed.
    std::function<boost::asio::awaitable<void>(Clock::TimePoint deadline)> pause;
    /// Told which processes outlived the grace period, just before they get SIGKILL (optional).
    std::function<void(const std::vector<ProcessToEnd>&)> before_kill;
};

/// SIGTERM to each process (its whole group when it leads one), up to `grace` for all to go, then
/// SIGKILL to those left and up to `kill_wait` more. Returns those still there (they survived
/// SIGKILL). Processes already gone are never signalled.
boost::asio::awaitable<std::vector<ProcessToEnd>> EndProcesses(std::vector<ProcessToEnd> processes, Millis grace,
                                                               Millis kill_wait, Clock& clock, EndingMethod how);

/// For processes that are not necessarily our children: SignalIfSame to the group each leads (or
/// the process alone); gone once /proc has no such process or shows a zombie. With
/// `await_reaping`, a zombie that is our own child counts as gone only once reaped (ralphd's
/// SIGCHLD handler does that), so that none is left. Checks every 20 ms on `clock`.
EndingMethod EndByProc(ProcFs proc, Clock& clock, boost::asio::any_io_executor executor, bool await_reaping);

/// A pause for EndingMethod: sleeps on `clock` until `deadline`, or 20 ms at most.
boost::asio::awaitable<void> PollPause(Clock& clock, boost::asio::any_io_executor executor, Clock::TimePoint deadline);

/// Processes (not zombies, not ralphd itself) whose environment holds `entry` ("KEY=VALUE") and
/// that started at or after `started_since` (clock ticks after boot, as in ProcStat).
std::vector<ProcessToEnd> ProcessesCarrying(const ProcFs& proc, std::string_view entry, uint64_t started_since = 0);

/// "12 34 56".
std::string PidList(const std::vector<ProcessToEnd>& processes);

}  // namespace ralph
