#include "daemon/server_output.h"

#include "common/log.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ralph {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kLogRotateBytes = 5 << 20;
constexpr std::size_t kRecentLines = 20;
constexpr std::size_t kLongestLine = 64 * 1024;
constexpr const char* kListeningPrefix = "opencode server listening on http://";

std::string LocalTimestamp()
{
    std::time_t t = std::time(nullptr);
    std::tm tm {};
    localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

}  // namespace

std::string ServerInstance::RecentOutput(std::size_t lines) const
{
    std::string out;
    std::size_t from = recent.size() > lines ? recent.size() - lines : 0;
    for (std::size_t i = from; i < recent.size(); ++i) {
        if (recent[i].empty()) continue;
        if (!out.empty()) out += " | ";
        out += recent[i];
    }
    return out;
}

void ServerInstance::CloseStreams()
{
    for (auto& s : streams) {
        boost::system::error_code ec;
        s->close(ec);
    }
}

ServerEndpoint ServerInstance::Endpoint() const
{
    ServerEndpoint ep;
    ep.host = "127.0.0.1";
    ep.port = port;
    ep.password = password;
    return ep;
}

ServerOutputLog::~ServerOutputLog()
{
    if (fd_ >= 0) close(fd_);
}

void ServerOutputLog::Write(std::string_view line)
{
    if (fd_ < 0) Open();
    if (fd_ < 0) return;
    if (size_ + line.size() + 1 > kLogRotateBytes) {
        close(fd_);
        fd_ = -1;
        std::rename(path_.c_str(), (path_ + ".1").c_str());
        Open();
        if (fd_ < 0) return;
    }
    std::string text(line);
    text += '\n';
    if (::write(fd_, text.data(), text.size()) > 0) size_ += text.size();
}

void ServerOutputLog::WriteOwn(std::string_view text)
{
    Write("[ralphd " + LocalTimestamp() + "] " + std::string(text));
}

void ServerOutputLog::Open()
{
    fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0) {
        if (!warned_) Log(LogLevel::Warning) << "cannot write " << path_ << ": " << std::strerror(errno);
        warned_ = true;
        return;
    }
    struct stat st {};
    size_ = fstat(fd_, &st) == 0 ? static_cast<std::size_t>(st.st_size) : 0;
}

std::string StripAnsi(std::string_view s)
{
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\x1b' && i + 1 < s.size() && s[i + 1] == '[') {
            i += 2;
            while (i < s.size() && !(s[i] >= '@' && s[i] <= '~')) ++i;
            continue;
        }
        out += s[i];
    }
    return out;
}

int ParseListeningLine(std::string_view line)
{
    std::string_view prefix = kListeningPrefix;
    if (line.substr(0, prefix.size()) != prefix) return 0;
    auto colon = line.rfind(':');
    if (colon == std::string_view::npos || colon < prefix.size()) return 0;
    int port = 0;
    for (char c : line.substr(colon + 1)) {
        if (c < '0' || c > '9') return 0;
        port = port * 10 + (c - '0');
        if (port > 65535) return 0;
    }
    return port;
}

asio::awaitable<void> ReadServerOutput(std::shared_ptr<ServerInstance> inst,
                                       std::shared_ptr<asio::posix::stream_descriptor> stream, bool is_stdout,
                                       ServerOutputLog& log, std::function<void()> changed, std::shared_ptr<bool> alive)
{
    std::string partial;
    char buf[8192];
    auto line = [&](std::string text) {
        if (!text.empty() && text.back() == '\r') text.pop_back();
        log.Write(text);
        std::string plain = StripAnsi(text);
        if (is_stdout && !inst->listening) {
            if (int port = ParseListeningLine(plain)) {
                inst->port = port;
                inst->listening = true;
                changed();
                return;  // not worth quoting in an error message
            }
        }
        inst->recent.push_back(std::move(plain));
        if (inst->recent.size() > kRecentLines) inst->recent.pop_front();
    };
    for (;;) {
        auto [ec, n] = co_await stream->async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
        if (!*alive) co_return;
        partial.append(buf, n);
        std::size_t start = 0;
        for (std::size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1)
            line(partial.substr(start, nl - start));
        partial.erase(0, start);
        if (partial.size() > kLongestLine) {  // a line without end: log it in pieces
            line(partial);
            partial.clear();
        }
        if (ec) break;
    }
    if (!partial.empty()) line(partial);
    boost::system::error_code ignored;
    stream->close(ignored);
    --inst->open_streams;
    changed();
}

}  // namespace ralph
