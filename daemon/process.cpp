#include "daemon/process.h"

#include "common/log.h"
#include "daemon/proc_scan.h"

#include <boost/asio/post.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/close_range.h>
#include <netinet/in.h>
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
    // Everything the child needs is prepared before fork: between fork and execve it calls only
    // async-signal-safe functions.
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(spec.program.c_str()));
    for (const std::string& a : spec.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const std::string& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    int out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
    auto close_all = [&] {
        for (int fd : {out[0], out[1], err[0], err[1], report[0], report[1]})
            if (fd >= 0) close(fd);
    };
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(report, O_CLOEXEC) != 0) {
        std::string why = std::strerror(errno);
        close_all();
        return "cannot start " + spec.program + ": pipe: " + why;
    }
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
        std::string why = std::strerror(errno);
        close_all();
        return "cannot start " + spec.program + ": /dev/null: " + why;
    }

    // Block every signal across fork so no handler of ours runs in the child before it resets them.
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t pid = fork();
    if (pid == 0) {
        for (int sig = 1; sig < NSIG; ++sig) {
            struct sigaction sa {};
            sa.sa_handler = SIG_DFL;
            sigaction(sig, &sa, nullptr);  // fails harmlessly for SIGKILL, SIGSTOP and reserved ones
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        setsid();
        int e = 0;
        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0 || dup2(err[1], STDERR_FILENO) < 0) e = errno;
        // Every other descriptor goes now rather than at exec: should ralphd be killed before this
        // child execs, its copy of the instance lock would keep the next ralphd out (the crash test
        // met it). `report` stays open until exec (it is close-on-exec) to carry an error.
        if (e == 0) {
            const int keep = report[1];
            if (keep > 3 && close_range(3, static_cast<unsigned>(keep - 1), 0) != 0)
                for (int fd = 3; fd < keep; ++fd) close(fd);
            if (close_range(static_cast<unsigned>(keep + 1), ~0U, 0) != 0)
                for (int fd = keep + 1; fd < 65536; ++fd) close(fd);
        }
        if (e == 0 && !spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) e = errno;
        if (e == 0) {
            execve(argv[0], argv.data(), envp.data());
            e = errno;
        }
        ssize_t ignored = write(report[1], &e, sizeof e);
        (void)ignored;
        _exit(127);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    close(null_fd);
    close(out[1]);
    close(err[1]);
    close(report[1]);
    out[1] = err[1] = report[1] = -1;
    if (pid < 0) {
        close_all();
        return "cannot start " + spec.program + ": fork: " + std::strerror(fork_errno);
    }
    children_.insert(pid);

    // EOF on `report` means execve succeeded; an int is the errno of what failed.
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(report[0], &child_errno, sizeof child_errno);
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    report[0] = -1;
    if (n == static_cast<ssize_t>(sizeof child_errno)) {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        children_.erase(pid);
        close_all();
        return "cannot execute " + spec.program + ": " + std::strerror(child_errno);
    }
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
