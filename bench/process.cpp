#include "bench/process.h"

#include "common/spawn.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>


namespace ralph::bench {

using SteadyClock = std::chrono::steady_clock;

pid_t Spawn(const std::vector<std::string>& argv, const Env& env, const std::string& cwd,
            const std::string& stdout_path, const std::string& stderr_path)
{
    return SpawnProcess({argv, env, cwd, stdout_path, stderr_path, /*append=*/true});
}

Finished Wait(pid_t pid, SteadyClock::time_point started, std::chrono::milliseconds timeout)
{
    Finished f;
    // A pidfd lets us sleep until the exit instead of polling, so short runs are timed exactly.
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    auto deadline = started + timeout;
    bool timed_out = false;
    while (pidfd >= 0) {
        // A process that has already exited is never "timed out", even past the deadline.
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
        pollfd p{pidfd, POLLIN, 0};
        int r = poll(&p, 1, static_cast<int>(std::clamp<long long>(left, 0, 1 << 30)));
        if (r > 0) break;
        if (r < 0 && errno != EINTR) break;
        if (r == 0 && left <= 0) {
            timed_out = true;
            break;
        }
    }
    if (pidfd >= 0) close(pidfd);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    rusage ru{};
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    f.wall_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - started).count();
    f.cpu_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    f.maxrss_kb = ru.ru_maxrss;
    if (timed_out) f.code = -1;
    else if (WIFEXITED(status)) f.code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) f.code = 128 + WTERMSIG(status);
    return f;
}

Finished RunTimed(const std::vector<std::string>& argv, const Env& env, const std::string& cwd,
                  const std::string& stdout_path, std::chrono::milliseconds timeout)
{
    auto started = SteadyClock::now();
    pid_t pid = Spawn(argv, env, cwd, stdout_path, "/dev/null");
    return Wait(pid, started, timeout);
}

std::string Capture(const std::vector<std::string>& argv, const Env& env, const std::string& cwd, int* code,
                    std::chrono::milliseconds timeout)
{
    char path[] = "/tmp/ralph-bench-out-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) throw std::runtime_error(std::string("mkstemp: ") + std::strerror(errno));
    close(fd);
    Finished f = RunTimed(argv, env, cwd, path, timeout);
    std::string out = ReadFile(path);
    unlink(path);
    if (code) *code = f.code;
    return out;
}

void Terminate(pid_t pid, std::chrono::milliseconds grace)
{
    if (pid <= 0) return;
    if (kill(pid, SIGTERM) != 0) {
        waitpid(pid, nullptr, WNOHANG);
        return;
    }
    Wait(pid, SteadyClock::now(), grace);  // kills with SIGKILL after the grace period
}

long StatusKb(pid_t pid, const char* field)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line, key = std::string(field) + ":";
    while (std::getline(in, line)) {
        if (line.compare(0, key.size(), key) == 0) return std::strtol(line.c_str() + key.size(), nullptr, 10);
    }
    return -1;
}

double CpuSeconds(pid_t pid)
{
    std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream in(stat.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {  // fields 14 and 15: utime, stime (clock ticks)
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double ExactCpuSeconds(pid_t pid)
{
    std::string text = ReadFile("/proc/" + std::to_string(pid) + "/schedstat");
    if (text.empty()) return -1;
    return static_cast<double>(std::strtoull(text.c_str(), nullptr, 10)) / 1e9;
}

bool ResetPeakRss(pid_t pid)
{
    std::ofstream out("/proc/" + std::to_string(pid) + "/clear_refs");
    out << "5";
    out.flush();
    return static_cast<bool>(out);
}

bool Alive(pid_t pid)
{
    std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

std::string ReadFile(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void WriteFile(const std::string& path, const std::string& text)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + path);
}

double NowSeconds() { return std::chrono::duration<double>(SteadyClock::now().time_since_epoch()).count(); }

int64_t UnixMillis()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace ralph::bench
