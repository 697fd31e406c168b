// What the benchmark driver needs from the operating system: starting programs with a private
// environment, timing them to exit, and reading a process's memory and CPU time from /proc.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace ralph::bench {

/// Environment overrides: a value replaces the variable, "" removes it.
using Env = std::map<std::string, std::string>;

/// Starts a program (posix_spawn) with the current environment plus `env`, in `cwd` (empty: ours),
/// stdin from /dev/null and stdout/stderr appended to the given files. Throws std::runtime_error.
pid_t Spawn(const std::vector<std::string>& argv, const Env& env, const std::string& cwd = "",
            const std::string& stdout_path = "/dev/null", const std::string& stderr_path = "/dev/null");

struct Finished {
    int code{-1};           ///< exit code, 128 + signal, or -1 when it timed out (and was killed)
    double wall_ms{0};      ///< from Spawn to exit
    double cpu_s{0};        ///< user + system CPU of the process and the children it waited for
    long maxrss_kb{0};      ///< peak RSS of the process (ru_maxrss)
};

/// Waits for a child started at `started` and reaps it; kills it (SIGKILL) after `timeout`.
Finished Wait(pid_t pid, std::chrono::steady_clock::time_point started, std::chrono::milliseconds timeout);

/// Spawn + Wait: one timed run of a program.
Finished RunTimed(const std::vector<std::string>& argv, const Env& env, const std::string& cwd = "",
                  const std::string& stdout_path = "/dev/null",
                  std::chrono::milliseconds timeout = std::chrono::minutes(5));

/// Runs a program to its end and returns its stdout; `code` gets its exit code.
std::string Capture(const std::vector<std::string>& argv, const Env& env, const std::string& cwd, int* code,
                    std::chrono::milliseconds timeout = std::chrono::minutes(2));

/// Sends SIGTERM, then SIGKILL after `grace`, and reaps; for children of this process only.
void Terminate(pid_t pid, std::chrono::milliseconds grace = std::chrono::seconds(10));

/// A field of /proc/PID/status in kB ("VmRSS", "VmHWM"); -1 when the process or field is missing.
long StatusKb(pid_t pid, const char* field);
/// User + system CPU seconds of a process so far (/proc/PID/stat); -1 when it is gone.
double CpuSeconds(pid_t pid);
/// CPU seconds of a single-threaded process (ralphd) to the nanosecond (/proc/PID/schedstat: the
/// main thread's time on a CPU, user and system); -1 when it is gone. /proc/PID/stat counts in
/// 10 ms ticks, too coarse for a few milliseconds per iteration.
double ExactCpuSeconds(pid_t pid);
/// Resets the process's peak RSS (VmHWM) to its current RSS (writes 5 to /proc/PID/clear_refs).
bool ResetPeakRss(pid_t pid);
/// True while the process exists and is not a zombie.
bool Alive(pid_t pid);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);

/// Seconds since an arbitrary point, for intervals; and unix milliseconds, to compare with
/// ralph's own records and log stamps.
double NowSeconds();
int64_t UnixMillis();

}  // namespace ralph::bench
