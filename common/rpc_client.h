// A blocking JSON-RPC client over the daemon's Unix socket: what `ralph` and the tests use.
#pragma once

#include "common/line_framer.h"

#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

namespace ralph {

/// The daemon could not be reached or the connection broke.
struct ConnectionError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// The socket may not be trusted: its directory could have been made by another user, or the
/// process listening on it runs as another user. Nothing was sent.
struct UntrustedSocket : ConnectionError {
    using ConnectionError::ConnectionError;
};

/// Something answered but not with a JSON-RPC message: ralphd is there, yet its reply is broken.
struct UnreadableReply : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class RpcClient {
public:
    /// Connects to the socket; throws ConnectionError naming the path and the reason, or
    /// UntrustedSocket when its directory or the listening process is not this user's.
    explicit RpcClient(const std::string& socket_path);
    ~RpcClient();
    RpcClient(const RpcClient&) = delete;
    RpcClient& operator=(const RpcClient&) = delete;

    /// Sends a request and returns the whole response object (with "result" or "error").
    /// Notifications that arrive first go to on_notification. Throws ConnectionError, or
    /// UnreadableReply when a line is not a JSON object.
    boost::json::object Call(const std::string& method, boost::json::value params = nullptr,
                             const std::function<void(const boost::json::object&)>& on_notification = {});

    void SendLine(const std::string& line);
    /// The next line, or nothing at end of stream. Throws ConnectionError on timeout or error.
    std::optional<std::string> ReadLine(std::chrono::milliseconds timeout = std::chrono::hours(24 * 365));

    /// Like ReadLine, but a timeout is no error: `timed_out` is set and nothing returned.
    std::optional<std::string> TryReadLine(std::chrono::milliseconds timeout, bool* timed_out);

    int fd() const { return fd_; }

private:
    int fd_{-1};
    std::string path_;
    LineFramer framer_{64 << 20};
    long long next_id_{1};
};

/// True when something accepts connections at the path.
bool SocketAnswers(const std::string& socket_path);

}  // namespace ralph
