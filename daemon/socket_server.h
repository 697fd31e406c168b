// The daemon's Unix socket: accepts connections, checks the peer's uid, reads JSON-RPC lines with
// an idle timeout and a size limit, and writes replies with a deadline. Runs on the daemon's
// io_context thread; each connection is one coroutine that handles its requests in order.
#pragma once

#include "daemon/rpc_table.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <chrono>
#include <memory>
#include <set>
#include <string>

namespace ralph {

struct SocketServerOptions {
    std::size_t max_line{1 << 20};
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
    std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};
};

class SocketServer {
public:
    SocketServer(asio::io_context& io, const RpcTable& table, Daemon& daemon, SocketServerOptions options);
    ~SocketServer();

    /// Binds and listens at `path` under umask 077, mode 0600. The caller holds the instance lock
    /// and has removed a stale socket. Throws std::runtime_error naming the path.
    void Listen(const std::string& path);
    /// Takes an already listening socket (systemd socket activation).
    void Adopt(int fd);
    void Start();
    /// Phase one of shutdown: stop accepting and end idle connections; connections that are
    /// answering finish their reply first.
    void Close();

    class Connection;

private:
    asio::awaitable<void> AcceptLoop();

    asio::io_context& io_;
    const RpcTable& table_;
    Daemon& daemon_;
    SocketServerOptions options_;
    asio::local::stream_protocol::acceptor acceptor_;
    std::set<Connection*> connections_;
    bool closed_{false};
};

}  // namespace ralph
