#include "common/rpc_client.h"

#include "common/jsonrpc.h"
#include "common/paths.h"
#include "common/text.h"

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace ralph {

namespace json = boost::json;

static int ConnectUnix(const std::string& path, int* error)
{
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) {
        *error = ENAMETOOLONG;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error = errno;
        return -1;
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        *error = errno;
        close(fd);
        return -1;
    }
    return fd;
}

RpcClient::RpcClient(const std::string& socket_path) : path_(socket_path)
{
    if (auto why = CheckSocketDir(socket_path, true); !why.empty()) throw UntrustedSocket(why);
    int error = 0;
    fd_ = ConnectUnix(socket_path, &error);
    if (fd_ < 0) throw ConnectionError("cannot connect to " + socket_path + ": " + std::strerror(error));
    // Before anything is sent: our requests (and what we print of the answers) are for our own
    // ralphd only, never for a listener another user put in our way.
    ucred peer{};
    socklen_t len = sizeof peer;
    if (getsockopt(fd_, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.uid != getuid()) {
        std::string who = len == sizeof peer ? "uid " + std::to_string(peer.uid) + " (pid " + std::to_string(peer.pid) + ")"
                                             : std::string("an unknown user");
        close(fd_);
        fd_ = -1;
        throw UntrustedSocket("refusing " + socket_path + ": the process listening on it runs as " + who +
                              ", not as you (uid " + std::to_string(getuid()) +
                              "); nothing was sent. Use your own socket (--socket or RALPH_SOCKET)");
    }
}

RpcClient::~RpcClient()
{
    if (fd_ >= 0) close(fd_);
}

void RpcClient::SendLine(const std::string& line)
{
    std::size_t off = 0;
    while (off < line.size()) {
        ssize_t n = send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw ConnectionError("lost the connection to ralphd (" + path_ + "): " + std::strerror(errno));
        }
        off += static_cast<std::size_t>(n);
    }
}

std::optional<std::string> RpcClient::ReadLine(std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto line = framer_.Next()) return line;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) throw ConnectionError("ralphd did not answer in time (" + path_ + ")");
        pollfd p{fd_, POLLIN, 0};
        int r = poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw ConnectionError(std::string("poll: ") + std::strerror(errno));
        if (r == 0) continue;
        char buf[65536];
        ssize_t n = recv(fd_, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw ConnectionError("lost the connection to ralphd (" + path_ + "): " + std::strerror(errno));
        }
        if (n == 0) return std::nullopt;
        framer_.Append(std::string_view(buf, static_cast<std::size_t>(n)));
    }
}

std::optional<std::string> RpcClient::TryReadLine(std::chrono::milliseconds timeout, bool* timed_out)
{
    *timed_out = false;
    if (auto line = framer_.Next()) return line;
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(timeout.count()));
    if (r == 0) {
        *timed_out = true;
        return std::nullopt;
    }
    return ReadLine();
}

json::object RpcClient::Call(const std::string& method, json::value params,
                             const std::function<void(const json::object&)>& on_notification)
{
    long long id = next_id_++;
    SendLine(json::serialize(jsonrpc::MakeRequest(id, method, std::move(params))) + "\n");
    for (;;) {
        auto line = ReadLine();
        if (!line) throw ConnectionError("ralphd closed the connection (" + path_ + ")");
        boost::system::error_code ec;
        json::value v = json::parse(*line, ec);
        if (ec || !v.is_object())
            throw UnreadableReply("ralphd (" + path_ + ") sent a reply that is not a JSON-RPC message (" +
                                  (ec ? ec.message() : std::string("not an object")) + "): " +
                                  Printable(line->substr(0, 200)));
        json::object& o = v.as_object();
        if (!o.contains("id")) {
            if (on_notification) on_notification(o);
            continue;
        }
        return std::move(o);
    }
}

bool SocketAnswers(const std::string& socket_path)
{
    int error = 0;
    int fd = ConnectUnix(socket_path, &error);
    if (fd < 0) return false;
    close(fd);
    return true;
}

}  // namespace ralph
