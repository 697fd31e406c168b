#include "daemon/daemon.h"

#include "common/log.h"
#include "common/paths.h"
#include "common/rpc_client.h"
#include "daemon/checkpoint.h"
#include "daemon/loop_engine.h"
#include "daemon/opencode_client.h"
#include "daemon/process.h"
#include "daemon/sd_notify.h"
#include "daemon/server_supervisor.h"
#include "daemon/socket_server.h"
#include "daemon/store.h"
#include "daemon/store_guard.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <functional>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace ralph {

Daemon::Daemon(DaemonOptions options)
    : options_(std::move(options)), opencode_clients_(HttpOpencodeClients(io_.get_executor()))
{
}

Daemon::~Daemon()
{
    watchdog_.reset();  // its timer belongs to io_
    socket_.reset();
    loops_.reset();
    supervisor_.reset();
    store_guard_.reset();  // writes what it still keeps before the store closes
    store_.reset();
    if (listening_) unlink(options_.socket_path.c_str());
    if (lock_fd_ >= 0) {
        unlink(lock_path_.c_str());
        close(lock_fd_);
    }
}

std::string Daemon::database_path() const { return options_.state_dir + "/ralph.db"; }

double Daemon::uptime_seconds() const
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

bool Daemon::TakeInstanceLock()
{
    lock_path_ = options_.socket_path + ".lock";
    for (int attempt = 0; attempt < 10; ++attempt) {
        // O_NOFOLLOW: a symbolic link put here would have us write our pid into its target.
        int fd = open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            Log(LogLevel::Error) << "cannot open lock file " << lock_path_ << ": "
                                 << (errno == ELOOP ? "it is a symbolic link (not followed); remove it if you did not make it"
                                                    : std::strerror(errno));
            return false;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            char buf[32] = {};
            ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
            close(fd);
            std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "unknown";
            while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
            Log(LogLevel::Error) << "ralphd is already running (pid " << pid << ", socket " << options_.socket_path << ")";
            return false;
        }
        // A daemon that was exiting may have unlinked the file we opened: then lock the new one.
        struct stat held {}, now {};
        if (fstat(fd, &held) != 0 || lstat(lock_path_.c_str(), &now) != 0 || held.st_ino != now.st_ino) {
            close(fd);
            continue;
        }
        std::string pid = std::to_string(getpid()) + "\n";
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
            Log(LogLevel::Warning) << "cannot write pid to " << lock_path_ << ": " << std::strerror(errno);
        }
        lock_fd_ = fd;
        return true;
    }
    Log(LogLevel::Error) << "cannot take the lock " << lock_path_ << ": it keeps being replaced";
    return false;
}

namespace {

/// The path a listening Unix socket is bound to, or "" (abstract, unnamed, or not a Unix socket).
std::string BoundPath(int fd)
{
    sockaddr_un addr{};
    socklen_t len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || addr.sun_family != AF_UNIX) return "";
    if (len <= offsetof(sockaddr_un, sun_path) || addr.sun_path[0] == '\0') return "";
    return std::string(addr.sun_path, strnlen(addr.sun_path, len - offsetof(sockaddr_un, sun_path)));
}

/// Why an inherited descriptor cannot be our listening socket, or "".
std::string CheckInheritedSocket(int fd)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        return errno == ENOTSOCK ? "it is not a Unix stream socket (not a socket at all)" : std::strerror(errno);
    len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) return std::strerror(errno);
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) return std::strerror(errno);
    if (addr.ss_family != AF_UNIX || type != SOCK_STREAM) return "it is not a Unix stream socket";
    if (!listening) return "it is not listening";
    return "";
}

}  // namespace

int Daemon::Run()
{
    if (int code = Open(); code != 0) return code;

    asio::signal_set signals(io_, SIGTERM, SIGINT);
    signals.async_wait([this](const boost::system::error_code& ec, int sig) {
        if (!ec) RequestShutdown(sig == SIGTERM ? "SIGTERM" : "SIGINT");
    });
    // SIGHUP re-reads ralphd.conf (systemd's ExecReload= sends it), as `ralph daemon reload` does.
    asio::signal_set hangups(io_, SIGHUP);
    std::function<void(const boost::system::error_code&, int)> on_hangup = [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        try {
            ReloadAndLog("SIGHUP");
        } catch (const ConfigError&) {
            // logged; the config in use stays
        }
        hangups.async_wait(on_hangup);
    };
    hangups.async_wait(on_hangup);
    asio::co_spawn(io_, WarmUp(), asio::detached);

    io_.run();
    // Let every cancelled operation complete so that no coroutine is left holding a reference
    // to an object about to be destroyed.
    socket_->Close();
    io_.restart();
    for (int i = 0; i < 1000 && io_.poll() > 0; ++i) {
    }
    Log(LogLevel::Info) << "ralphd stopped";
    return 0;
}

int Daemon::Open()
{
    try {
        config_ = LoadConfig(options_.config_path, options_.overrides);
        config_file_values_ = ConfigFileValues(options_.config_path);
    } catch (const ConfigError& e) {
        Log(LogLevel::Error) << "configuration: " << e.what();
        return 1;
    }

    // Socket activation: systemd listens for us, and its socket's path is the one to lock beside.
    int inherited = SdListenFd();
    if (inherited >= 0) {
        if (auto why = CheckInheritedSocket(inherited); !why.empty()) {
            Log(LogLevel::Error) << "systemd passed descriptor " << inherited << " (LISTEN_FDS) but " << why
                                 << "; check ListenStream= in ralphd.socket";
            return 1;
        }
        if (std::string path = BoundPath(inherited); !path.empty() && path != options_.socket_path) {
            Log(LogLevel::Info) << "systemd passed the socket " << path << "; using it instead of "
                                << options_.socket_path;
            options_.socket_path = path;
        }
    }

    std::string socket_dir = DirName(options_.socket_path);
    if (auto err = MakeDirs(socket_dir, 0700); !err.empty()) {
        Log(LogLevel::Error) << err;
        return 1;
    }
    if (auto err = CheckSocketDir(options_.socket_path, false); !err.empty()) {
        Log(LogLevel::Error) << err;
        return 1;
    }
    struct stat st {};
    if (stat(socket_dir.c_str(), &st) == 0 && st.st_uid == getuid() && (st.st_mode & 077) != 0)
        chmod(socket_dir.c_str(), 0700);
    if (!TakeInstanceLock()) return 1;

    if (auto err = MakeDirs(options_.state_dir, 0700); !err.empty()) {
        Log(LogLevel::Error) << err;
        return 1;
    }
    try {
        store_ = std::make_unique<RunStore>(database_path());
    } catch (const StoreError& e) {
        Log(LogLevel::Error) << e.what();
        return 1;
    }
    RegisterAllMethods(table_);
    table_.SetWarmingUp([this] { return warming_up_; });

    supervisor_ = std::make_unique<ServerSupervisor>(io_, config_.server, *store_, options_.state_dir, SupervisorHooks{},
                                                     SystemClock());
    // server.idle_stop applies to a managed server only.
    const Millis idle_stop = config_.server.mode == "managed" ? config_.server.idle_stop : Millis(0);
    const char* path = getenv("PATH");
    git_ = std::make_unique<GitRunner>(supervisor_->launcher(), FindExecutable("git", path ? path : ""));
    loops_ = std::make_unique<LoopEngine>(io_, *store_, *supervisor_, config_.run, SystemClock(), opencode_clients_,
                                          idle_stop, *git_);
    store_guard_ = std::make_unique<StoreGuard>(io_, *store_, [this] { loops_->activity().Notify(); });

    SocketServerOptions socket_options;
    socket_options.idle_timeout = options_.client_idle_timeout;
    socket_ = std::make_unique<SocketServer>(io_, table_, *this, socket_options);
    try {
        if (inherited >= 0) {
            // Never unlinked or replaced: the socket belongs to systemd and outlives this daemon.
            socket_->Adopt(inherited);
            Log(LogLevel::Info) << "using the socket passed by systemd";
        } else {
            if (access(options_.socket_path.c_str(), F_OK) == 0) {
                if (SocketAnswers(options_.socket_path)) {
                    Log(LogLevel::Error) << "another process answers on " << options_.socket_path
                                         << " without holding " << lock_path_ << "; not replacing it";
                    return 1;
                }
                unlink(options_.socket_path.c_str());  // stale: left by a daemon that was killed
            }
            socket_->Listen(options_.socket_path);
            listening_ = true;
        }
    } catch (const std::exception& e) {
        Log(LogLevel::Error) << e.what();
        return 1;
    }
    socket_->Start();
    return 0;
}

asio::awaitable<void> Daemon::WarmUp()
{
    // The socket answers from the start (WARMING_UP for what needs the store), so that a client
    // never takes a slow start for a dead daemon and starts a second one.
    try {
        co_await supervisor_->ReconcileAsync();
    } catch (const std::exception& e) {
        // What is left shows in `ralph status` (untracked servers); serving matters more.
        Log(LogLevel::Error) << "reconciling what a previous ralphd left: " << e.what();
    }
    if (shutting_down_) co_return;
    loops_->SetMaxRunning(config_.daemon.max_running);
    ApplyServerLimits();
    loops_->ResumeLeftRuns();
    warming_up_ = false;
    Log(LogLevel::Info) << "ralphd " << RALPH_VERSION << " ready (pid " << getpid() << ", socket "
                        << options_.socket_path << ", database " << database_path() << ")";
    // Only now: the database is migrated, leftovers are reconciled and the socket answers.
    SdNotify("READY=1\nSTATUS=serving");
    watchdog_ = SdWatchdogStart(io_);
}

void Daemon::RequestShutdown(const std::string& why)
{
    if (shutting_down_) return;
    shutting_down_ = true;
    Log(LogLevel::Info) << "shutting down (" << why << ")";
    SdNotify("STOPPING=1");
    asio::co_spawn(io_, Shutdown(), asio::detached);
}

asio::awaitable<void> Daemon::Shutdown()
{
    // Phase one: accept no more work and wake every waiter. Phase two: release resources.
    socket_->Close();
    try {
        co_await loops_->Shutdown();     // sessions in flight aborted while the server still runs
        co_await supervisor_->Shutdown();
        co_await loops_->WaitStopped();  // loops that were waiting for the server are gone too
    } catch (const std::exception& e) {
        Log(LogLevel::Error) << "during shutdown: " << e.what();
    }
    io_.stop();
}

}  // namespace ralph
