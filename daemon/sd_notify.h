// The parts of systemd's protocols ralphd speaks, without libsystemd: sd_notify datagrams,
// the watchdog, and socket activation.
#pragma once

#include <boost/asio/io_context.hpp>

#include <string>

namespace ralph {

/// Sends a state ("READY=1", "STOPPING=1", ...) to $NOTIFY_SOCKET; does nothing without it.
void SdNotify(const std::string& state);

/// When $WATCHDOG_USEC is set (and $WATCHDOG_PID is us), pings WATCHDOG=1 from the io_context
/// every half interval, so a stuck event loop gets the daemon restarted.
void SdWatchdogStart(boost::asio::io_context& io);

/// The listening socket passed by systemd ($LISTEN_PID is us, $LISTEN_FDS >= 1): fd 3; else -1.
int SdListenFd();

}  // namespace ralph
