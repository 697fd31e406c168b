// The managed opencode server's output: its stdout and stderr read line by line into
// <state dir>/opencode-server.log (rotated to .1 at 5 MiB), the "listening" line that tells its
// port, and its last lines (colour codes stripped) for error messages. Also the one launched
// process these belong to (ServerInstance).
#pragma once

#include "daemon/opencode_http.h"
#include "daemon/process.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ralph {

/// "KEY" of the random marker in the server's environment, inherited by its tool processes.
inline constexpr const char* kServerTagVariable = "RALPHD_SERVER_TAG";
/// The state directory of the ralphd that started a server, in the environment of the server and
/// of every tool it runs: how a successor finds what a daemon killed before it recorded its server.
inline constexpr const char* kServerOwnerVariable = "RALPHD_OWNER";

/// One launched `opencode serve` process.
struct ServerInstance {
    int pid{0};
    uint64_t start_time{0};
    int port{0};  ///< the port asked for; the listening line's port once it came
    std::string password;
    std::string tag;  ///< RALPHD_SERVER_TAG in its environment, inherited by its tool processes
    bool listening{false};
    bool exited{false};
    ExitStatus exit;
    int open_streams{0};
    std::deque<std::string> recent;  ///< its last output lines, without colour codes
    std::vector<std::shared_ptr<boost::asio::posix::stream_descriptor>> streams;

    /// Its last `lines` non-empty output lines joined with " | ".
    std::string RecentOutput(std::size_t lines = 4) const;
    void CloseStreams();
    /// Where it listens, with its password.
    ServerEndpoint Endpoint() const;
    /// "RALPHD_SERVER_TAG=<tag>": the environment entry of its tool processes.
    std::string TagEntry() const { return std::string(kServerTagVariable) + "=" + tag; }
};

/// The server's log file, opened on first write; a line that would take it past 5 MiB first
/// renames it to PATH.1.
class ServerOutputLog {
public:
    explicit ServerOutputLog(std::string path) : path_(std::move(path)) {}
    ~ServerOutputLog();
    ServerOutputLog(const ServerOutputLog&) = delete;
    ServerOutputLog& operator=(const ServerOutputLog&) = delete;

    void Write(std::string_view line);
    /// A line of ralphd's own: "[ralphd YYYY-MM-DD HH:MM:SS] text".
    void WriteOwn(std::string_view text);
    const std::string& path() const { return path_; }

private:
    void Open();
    std::string path_;
    int fd_{-1};
    std::size_t size_{0};
    bool warned_{false};
};

/// Removes ANSI escape sequences (opencode colours its errors).
std::string StripAnsi(std::string_view s);
/// The port of "opencode server listening on http://127.0.0.1:PORT", or 0.
int ParseListeningLine(std::string_view line);

/// Reads one of the instance's output pipes until it closes: every line goes to `log`; the
/// listening line on stdout sets its port and `listening`; the others are kept in `recent`.
/// Calls `changed` after the listening line and once the pipe is closed. Stops quietly, without
/// touching anything, once `*alive` is false (the supervisor is gone).
boost::asio::awaitable<void> ReadServerOutput(std::shared_ptr<ServerInstance> inst,
                                              std::shared_ptr<boost::asio::posix::stream_descriptor> stream,
                                              bool is_stdout, ServerOutputLog& log, std::function<void()> changed,
                                              std::shared_ptr<bool> alive);

}  // namespace ralph
