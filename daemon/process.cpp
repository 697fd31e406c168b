#include "daemon/process.h"

#include "common/log.h"
#include "daemon/proc_scan.h"

#include <boost/asio/post.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace ralph {

std::string ExitStatus::Describe() const
{
    if (signal != 0) {
        const char* abbrev = sigabbrev_np(signal);
        return "killed by signal " + std::to_string(signal) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
    }
    return "exited with status " + std::to_string(code);
}

ExitStatus ExitStatus::FromWait(int status)
{
    ExitStatus s;
    if (WIFEXITED(status)) s.code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) s.signal = WTERMSIG(status);
    return s;
}

PosixLauncher::PosixLauncher(boost::asio::io_context& io) : io_(io), sigchld_(io, SIGCHLD)
{
    // Asio installs its handler without SA_RESTART; children (and adopted orphans) exit often,
    // so keep their SIGCHLD from interrupting blocking calls elsewhere with EINTR.
    struct sigaction sa {};
    if (sigaction(SIGCHLD, nullptr, &sa) == 0) {
        sa.sa_flags |= SA_RESTART | SA_NOCLDSTOP;
        sigaction(SIGCHLD, &sa, nullptr);
    }
    Arm();
}

PosixLauncher::~PosixLauncher()
{
    boost::system::error_code ec;
    sigchld_.cancel(ec);
}

void PosixLauncher::Arm()
{
    sigchld_.async_wait([this](const boost::system::error_code& ec, int) {
        if (ec == boost::asio::error::operation_aborted) return;  // the launcher is gone
        Reap();
        Arm();
    });
}

void PosixLauncher::Reap()
{
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR) continue;
        if (pid <= 0) return;  // 0: children remain, none exited; -1 ECHILD: no children at all
        if (children_.erase(pid) == 0) continue;  // not ours: an adopted orphan, reaped and forgotten
        ExitStatus exit = ExitStatus::FromWait(status);
        auto it = watchers_.find(pid);
        if (it == watchers_.end()) {
            exited_[pid] = exit;
            continue;
        }
        auto callback = std::move(it->second);
        watchers_.erase(it);
        callback(exit);
    }
}

void PosixLauncher::WatchExit(int pid, std::function<void(ExitStatus)> on_exit)
{
    if (auto it = exited_.find(pid); it != exited_.end()) {
        ExitStatus exit = it->second;
        exited_.erase(it);
        boost::asio::post(io_, [on_exit = std::move(on_exit), exit] { on_exit(exit); });
        return;
    }
    watchers_[pid] = std::move(on_exit);
}

void PosixLauncher::SignalGroup(int pid, int sig)
{
    if (pid > 0 && children_.count(pid)) kill(-pid, sig);
}

std::variant<LaunchedProcess, std::string> PosixLauncher::Launch(const LaunchSpec& spec)
{
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(spec.program.c_str()));
    for (const std::string& a : spec.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const std::string& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    int out[2] = {-1, -1}, err[2] = {-1, -1};
    auto close_all = [&] {
        for (int fd : {out[0], out[1], err[0], err[1]})
            if (fd >= 0) close(fd);
    };
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        std::string why = std::strerror(errno);
        close_all();
        return "cannot start " + spec.program + ": pipe: " + why;
    }
    const std::string stdin_path = spec.stdin_path.empty() ? "/dev/null" : spec.stdin_path;
    int null_fd = open(stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
        std::string why = std::strerror(errno);
        close_all();
        return "cannot start " + spec.program + ": " + stdin_path + ": " + why;
    }

    // posix_spawn rather than fork: glibc's shares the parent's memory until the child execs
    // (clone with CLONE_VM | CLONE_VFORK), so starting git for each checkpoint copies no page
    // tables and takes no copy-on-write faults in ralphd afterwards. It returns the errno of a
    // failed chdir or execve.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, null_fd, STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    // Every other descriptor goes before exec, not at it: should ralphd be killed before this
    // child execs, its copy of the instance lock would keep the next ralphd out (the crash test
    // met it).
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, spec.cwd.c_str());
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);  // no handler of ours survives into the child
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(null_fd);
    close(out[1]);
    close(err[1]);
    out[1] = err[1] = -1;
    if (rc != 0) {
        close_all();
        return "cannot execute " + spec.program + ": " + std::strerror(rc);
    }
    children_.insert(pid);
    fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
    fcntl(err[0], F_SETFL, fcntl(err[0], F_GETFL) | O_NONBLOCK);
    return LaunchedProcess{pid, out[0], err[0]};
}

std::string FindExecutable(const std::string& name, const std::string& path_env)
{
    auto executable = [](const std::string& p) {
        struct stat st {};
        return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0;
    };
    if (name.empty()) return "";
    if (name.find('/') != std::string::npos) return executable(name) ? name : "";
    std::size_t start = 0;
    while (start <= path_env.size()) {
        std::size_t colon = path_env.find(':', start);
        if (colon == std::string::npos) colon = path_env.size();
        std::string dir = path_env.substr(start, colon - start);
        if (dir.empty()) dir = ".";
        std::string candidate = dir + "/" + name;
        if (executable(candidate)) return candidate;
        start = colon + 1;
    }
    return "";
}

std::vector<std::string> CurrentEnvironment()
{
    std::vector<std::string> out;
    for (char** e = environ; e && *e; ++e) out.emplace_back(*e);
    return out;
}

void UnsetEnv(std::vector<std::string>& env, const std::string& key)
{
    std::string prefix = key + "=";
    std::erase_if(env, [&](const std::string& e) { return e.compare(0, prefix.size(), prefix) == 0; });
}

void SetEnv(std::vector<std::string>& env, const std::string& key, const std::string& value)
{
    UnsetEnv(env, key);
    env.push_back(key + "=" + value);
}

std::string RandomHex(std::size_t bytes)
{
    std::string raw(bytes, '\0');
    std::size_t got = 0;
    while (got < bytes) {
        ssize_t n = getrandom(raw.data() + got, bytes - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    if (got < bytes) {  // no getrandom: read the device
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw std::runtime_error("cannot read /dev/urandom");
        while (got < bytes) {
            ssize_t n = read(fd, raw.data() + got, bytes - got);
            if (n <= 0) {
                close(fd);
                throw std::runtime_error("cannot read /dev/urandom");
            }
            got += static_cast<std::size_t>(n);
        }
        close(fd);
    }
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

bool SignalIfSame(int pid, uint64_t start_time, int sig, bool group)
{
    if (pid <= 1 || pid == getpid()) return false;
    // Hold a pidfd while checking: if the check passes, the pidfd names that very process.
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    auto done = [&](bool result) {
        if (pidfd >= 0) close(pidfd);
        return result;
    };
    ProcFs proc;
    auto st = proc.Stat(pid);
    if (!st || st->start_time != start_time || st->state == 'Z') return done(false);
    if (group) {
        if (st->pgid != pid || st->pgid == getpgrp()) group = false;  // not a group leader: just the process
    }
    if (group) return done(kill(-pid, sig) == 0);
    if (pidfd >= 0) return done(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0);
    return done(kill(pid, sig) == 0);
}

bool LoopbackPortFree(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as opencode's own listen does
    sockaddr_in addr {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && listen(fd, 1) == 0;
    close(fd);
    return free;
}

bool BecomeChildSubreaper()
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0) return true;
    Log(LogLevel::Warning) << "cannot become a child subreaper: " << std::strerror(errno)
                           << "; tool processes of a stopped opencode server may be missed";
    return false;
}

}  // namespace ralph
