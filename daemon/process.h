// Starting child processes behind an interface (ProcessLauncher), so the server supervisor can be
// unit-tested with a fake, and the real POSIX launcher with the daemon's SIGCHLD reaper.
// Both run on the daemon's io_context thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace ralph {

struct LaunchSpec {
    std::string program;            ///< absolute path (see FindExecutable)
    std::vector<std::string> args;  ///< argv[1...]
    std::vector<std::string> env;   ///< the complete environment, "KEY=VALUE"
    std::string cwd;                ///< empty: inherit
    std::string stdin_path;         ///< a file to read as stdin; empty: /dev/null
};

/// How a child ended.
struct ExitStatus {
    int code{-1};   ///< exit code, -1 when killed by a signal
    int signal{0};  ///< the signal that killed it, 0 when it exited
    /// "exited with status 1", "killed by signal 9 (SIGKILL)".
    std::string Describe() const;
    static ExitStatus FromWait(int status);
};

/// A started child: its pid and the read ends of its stdout and stderr pipes (non-blocking,
/// close-on-exec; the caller owns and closes them).
struct LaunchedProcess {
    int pid{0};
    int stdout_fd{-1};
    int stderr_fd{-1};
};

class ProcessLauncher {
public:
    virtual ~ProcessLauncher() = default;
    /// Starts a child in its own session and process group, stdin /dev/null (or `stdin_path`), stdout and stderr to
    /// pipes, no other descriptors, default signal dispositions and an empty signal mask.
    /// Returns the child or an error message naming the program.
    virtual std::variant<LaunchedProcess, std::string> Launch(const LaunchSpec& spec) = 0;
    /// Sends a signal to the process group the child leads. Only for a child whose exit has not
    /// been reported yet (until then its pid cannot be reused).
    virtual void SignalGroup(int pid, int sig) = 0;
    /// Calls `on_exit` (from the io_context) once the child has exited and been reaped; at once
    /// when that already happened. One watcher per child.
    virtual void WatchExit(int pid, std::function<void(ExitStatus)> on_exit) = 0;
};

/// fork + execve with everything ProcessLauncher promises. Reaps with waitpid(-1, WNOHANG) on
/// SIGCHLD: it must be the only reaper in the process. Exits of pids it did not start (e.g.
/// orphans reparented to a child subreaper) are reaped and ignored.
class PosixLauncher : public ProcessLauncher {
public:
    explicit PosixLauncher(boost::asio::io_context& io);
    ~PosixLauncher() override;

    std::variant<LaunchedProcess, std::string> Launch(const LaunchSpec& spec) override;
    void SignalGroup(int pid, int sig) override;
    void WatchExit(int pid, std::function<void(ExitStatus)> on_exit) override;

private:
    void Arm();
    void Reap();

    boost::asio::io_context& io_;
    boost::asio::signal_set sigchld_;
    std::set<int> children_;                                     ///< started, not yet reaped
    std::map<int, std::function<void(ExitStatus)>> watchers_;
    std::map<int, ExitStatus> exited_;                           ///< reaped before anyone watched
};

/// The path of an executable: `name` itself when it holds a '/', else the first match in the
/// colon-separated `path_env`. Empty when it does not exist or is not executable.
std::string FindExecutable(const std::string& name, const std::string& path_env);

/// The current process's environment as "KEY=VALUE" strings.
std::vector<std::string> CurrentEnvironment();

/// Sets or removes KEY in a "KEY=VALUE" list.
void SetEnv(std::vector<std::string>& env, const std::string& key, const std::string& value);
void UnsetEnv(std::vector<std::string>& env, const std::string& key);

/// `bytes` random bytes from /dev/urandom as lower-case hex.
std::string RandomHex(std::size_t bytes);

/// Signals a process (or the process group it leads) that is not necessarily our child, only
/// if it is still the same process: its start time (field 22 of /proc/PID/stat) must match.
/// Never signals ralphd's own process group. Returns false when nothing was signalled.
bool SignalIfSame(int pid, uint64_t start_time, int sig, bool group);

/// True when nothing listens on 127.0.0.1:port now (ralphd can bind and listen there itself).
bool LoopbackPortFree(int port);

/// Makes this process a child subreaper: orphaned descendants are reparented to it.
bool BecomeChildSubreaper();

}  // namespace ralph
