#include "daemon/sd_notify.h"

#include "common/paths.h"

#include <cstring>
#include <fcntl.h>
#include <memory>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace ralph {

void SdNotify(const std::string& state)
{
    std::string path = GetEnv("NOTIFY_SOCKET");
    if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) return;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    ssize_t r = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len);
    (void)r;
    close(fd);
}

SdWatchdog::SdWatchdog(boost::asio::io_context& io, std::chrono::microseconds period) : timer_(io), period_(period)
{
    Tick();
}

void SdWatchdog::Tick()
{
    SdNotify("WATCHDOG=1");
    timer_.expires_after(period_);
    // Cancelled when the watchdog goes: the handler then touches nothing of it.
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) Tick();
    });
}

std::unique_ptr<SdWatchdog> SdWatchdogStart(boost::asio::io_context& io)
{
    std::string usec = GetEnv("WATCHDOG_USEC");
    std::string pid = GetEnv("WATCHDOG_PID");
    if (usec.empty() || (!pid.empty() && pid != std::to_string(getpid()))) return nullptr;
    long long interval_us = std::atoll(usec.c_str());
    if (interval_us <= 0) return nullptr;
    return std::make_unique<SdWatchdog>(io, std::chrono::microseconds(interval_us / 2));
}

int SdListenFd()
{
    std::string pid = GetEnv("LISTEN_PID");
    std::string fds = GetEnv("LISTEN_FDS");
    if (pid.empty() || fds.empty() || pid != std::to_string(getpid()) || std::atoi(fds.c_str()) < 1) return -1;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    fcntl(3, F_SETFD, FD_CLOEXEC);
    return 3;
}

}  // namespace ralph
