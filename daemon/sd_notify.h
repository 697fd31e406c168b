// The parts of systemd's protocols ralphd speaks, without libsystemd: sd_notify datagrams,
// the watchdog, and socket activation.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace ralph {

/// Sends a state ("READY=1", "STOPPING=1", ...) to $NOTIFY_SOCKET; does nothing without it.
void SdNotify(const std::string& state);

/// Pings WATCHDOG=1 from the io_context every `period` while it lives, so that a stuck event loop
/// gets the daemon restarted. Must not outlive the io_context (its timer belongs to it).
class SdWatchdog {
public:
    SdWatchdog(boost::asio::io_context& io, std::chrono::microseconds period);
    SdWatchdog(const SdWatchdog&) = delete;
    SdWatchdog& operator=(const SdWatchdog&) = delete;

private:
    void Tick();
    boost::asio::steady_timer timer_;
    std::chrono::microseconds period_;
};

/// When $WATCHDOG_USEC is set (and $WATCHDOG_PID, if set, is us): a watchdog pinging every half
/// interval, to be kept no longer than the io_context; else nullptr.
std::unique_ptr<SdWatchdog> SdWatchdogStart(boost::asio::io_context& io);

/// The listening socket passed by systemd ($LISTEN_PID is us, $LISTEN_FDS >= 1): fd 3; else -1.
int SdListenFd();

}  // namespace ralph
