#include "daemon/socket_server.h"

#include "common/jsonrpc.h"
#include "common/errors.h"
#include "common/line_framer.h"
#include "common/log.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ralph {

using namespace boost::asio::experimental::awaitable_operators;
using stream = asio::local::stream_protocol;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kTrimAfterReplyBytes = 1 << 20;

class SocketServer::Connection {
public:
    Connection(SocketServer& server, stream::socket socket)
        : server_(server), socket_(std::move(socket)), timer_(socket_.get_executor()), framer_(server.options_.max_line)
    {
        server_.connections_.insert(this);
    }
    ~Connection() { server_.connections_.erase(this); }

    /// Ends the connection at the next idle moment (shutdown).
    void Close()
    {
        closing_ = true;
        if (idle_) {
            boost::system::error_code ec;
            socket_.cancel(ec);
            timer_.cancel();
        }
    }

    asio::awaitable<void> Run()
    {
        CallContext ctx{server_.daemon_,
                        [this](json::object n) -> asio::awaitable<void> {
                            if (!co_await Write(jsonrpc::ValidUtf8Line(json::serialize(n) + "\n"))) throw ClientGone();
                        },
                        {}};
        char buf[16384];
        while (!closing_ && socket_.is_open()) {
            while (auto line = framer_.Next()) {
                if (!line->empty() && line->back() == '\r') line->pop_back();
                if (line->find_first_not_of(" \t") == std::string::npos) continue;
                ctx.after_reply = {};
                std::optional<std::string> reply;
                try {
                    reply = co_await HandleLine(server_.table_, ctx, *line);
                } catch (const ClientGone&) {
                    co_return;
                }
                // A large reply (run.list {all}: megabytes) was built from hundreds of thousands of
                // small allocations, now freed. Give that memory back now, on this call's time:
                // otherwise glibc merges them on the next call's first large allocation, and
                // ralphd keeps the peak's pages.
                if (reply && reply->size() >= kTrimAfterReplyBytes) malloc_trim(0);
                if (reply && !co_await Write(*reply)) co_return;
                if (ctx.after_reply) ctx.after_reply();
                if (closing_) co_return;
            }
            if (framer_.overflowed()) {
                Log(LogLevel::Warning) << "closing a connection that sent a line over "
                                       << server_.options_.max_line << " bytes";
                co_await Write(json::serialize(jsonrpc::MakeError(
                                   nullptr, kInvalidRequest,
                                   "request too large: a line may hold at most " +
                                       std::to_string(server_.options_.max_line) + " bytes")) +
                               "\n");
                co_return;
            }
            idle_ = true;
            timer_.expires_after(server_.options_.idle_timeout);
            auto result = co_await (socket_.async_read_some(asio::buffer(buf), use_tuple) || timer_.async_wait(use_tuple));
            idle_ = false;
            if (result.index() == 1) co_return;  // idle too long, or shutdown
            auto [ec, n] = std::get<0>(result);
            if (ec) co_return;
            framer_.Append(std::string_view(buf, n));
        }
    }

private:
    /// Writes with a deadline; false (and the connection closed) when it fails or times out.
    asio::awaitable<bool> Write(std::string data)
    {
        asio::steady_timer deadline(socket_.get_executor());
        deadline.expires_after(server_.options_.write_timeout);
        auto result = co_await (asio::async_write(socket_, asio::buffer(data), use_tuple) || deadline.async_wait(use_tuple));
        if (result.index() == 0 && !std::get<0>(std::get<0>(result))) co_return true;
        boost::system::error_code ec;
        socket_.close(ec);
        co_return false;
    }

    SocketServer& server_;
    stream::socket socket_;
    asio::steady_timer timer_;
    LineFramer framer_;
    bool idle_{false};
    bool closing_{false};
};

SocketServer::SocketServer(asio::io_context& io, const RpcTable& table, Daemon& daemon, SocketServerOptions options)
    : io_(io), table_(table), daemon_(daemon), options_(options), acceptor_(io)
{
}

SocketServer::~SocketServer() = default;

void SocketServer::Listen(const std::string& path)
{
    mode_t old = umask(077);
    boost::system::error_code ec;
    acceptor_.open(stream(), ec);
    if (!ec) acceptor_.bind(stream::endpoint(path), ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    umask(old);
    if (ec) throw std::runtime_error("cannot listen on " + path + ": " + ec.message());
    chmod(path.c_str(), 0600);
}

void SocketServer::Adopt(int fd)
{
    acceptor_.assign(stream(), fd);
}

void SocketServer::Start()
{
    asio::co_spawn(io_, AcceptLoop(), asio::detached);
}

void SocketServer::Close()
{
    closed_ = true;
    boost::system::error_code ec;
    acceptor_.close(ec);
    for (Connection* c : connections_) c->Close();
}

asio::awaitable<void> SocketServer::AcceptLoop()
{
    while (!closed_) {
        auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
        if (ec) {
            if (closed_ || ec == asio::error::operation_aborted) co_return;
            Log(LogLevel::Warning) << "accept failed: " << ec.message();
            // Out of descriptors and the like: wait a little instead of spinning.
            asio::steady_timer pause(io_, std::chrono::milliseconds(100));
            co_await pause.async_wait(use_tuple);
            continue;
        }
        ucred cred{};
        socklen_t len = sizeof cred;
        if (getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != getuid()) {
            Log(LogLevel::Warning) << "refused a connection from uid " << cred.uid << " (pid " << cred.pid << ")";
            continue;  // the socket closes as it goes out of scope, before any request is read
        }
        asio::co_spawn(
            io_,
            [conn = std::make_shared<Connection>(*this, std::move(socket))]() -> asio::awaitable<void> {
                co_await conn->Run();
            },
            asio::detached);
    }
}

}  // namespace ralph
