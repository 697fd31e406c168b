#include "daemon/opencode_http.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

namespace ralph {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadBuffer = 64 * 1024;

std::string ServerEndpoint::AuthorizationHeader() const
{
    if (password.empty()) return "";
    std::string plain = username + ":" + password;
    std::string out(beast::detail::base64::encoded_size(plain.size()), '\0');
    out.resize(beast::detail::base64::encode(out.data(), plain.data(), plain.size()));
    return "Basic " + out;
}

json::value HttpResult::Json() const
{
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    return ec ? json::value() : v;
}

std::string HttpResult::Describe() const
{
    if (error == beast::error::timeout) return "timed out";
    if (error) return error.message();
    std::string out = "HTTP " + std::to_string(status);
    if (!body.empty()) out += ": " + body.substr(0, 300);
    return out;
}

std::string UrlEncode(std::string_view value)
{
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : value) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

static http::request<http::string_body> MakeRequest(const ServerEndpoint& server, http::verb method,
                                                    const std::string& target, std::string body)
{
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, server.host + ":" + std::to_string(server.port));
    req.set(http::field::user_agent, "ralphd/" RALPH_VERSION);
    if (auto auth = server.AuthorizationHeader(); !auth.empty()) req.set(http::field::authorization, auth);
    if (!body.empty()) {
        req.set(http::field::content_type, "application/json");
        req.body() = std::move(body);
    }
    req.prepare_payload();
    return req;
}

asio::awaitable<HttpResult> HttpCall(const ServerEndpoint& server, http::verb method, const std::string& target,
                                     std::string body, std::chrono::milliseconds timeout)
{
    HttpResult result;
    auto executor = co_await asio::this_coro::executor;
    beast::tcp_stream stream(executor);
    boost::system::error_code ec;
    auto address = asio::ip::make_address(server.host, ec);
    if (ec) {
        result.error = ec;
        co_return result;
    }
    stream.expires_after(timeout);
    std::tie(ec) = co_await stream.async_connect(tcp::endpoint(address, static_cast<unsigned short>(server.port)), use_tuple);
    if (ec) {
        result.error = ec;
        co_return result;
    }
    auto req = MakeRequest(server, method, target, std::move(body));
    std::size_t n = 0;
    std::tie(ec, n) = co_await http::async_write(stream, req, use_tuple);
    if (ec) {
        result.error = ec;
        co_return result;
    }
    // Beast reads as much as the buffer has room for, and an empty flat_buffer makes that 512
    // bytes: a session's messages (tens of kB) would take one system call per 512 bytes.
    beast::flat_buffer buffer;
    buffer.reserve(kReadBuffer);
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    std::tie(ec, n) = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (ec) {
        result.error = ec;
        co_return result;
    }
    result.status = static_cast<int>(parser.get().result_int());
    result.body = std::move(parser.get().body());
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    co_return result;
}

void SseParser::Feed(std::string_view bytes, const std::function<void(std::string_view)>& on_event)
{
    partial_.append(bytes);
    std::size_t start = 0;
    for (;;) {
        std::size_t nl = partial_.find('\n', start);
        if (nl == std::string::npos) break;
        std::string_view line(partial_.data() + start, nl - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        Line(line, on_event);
        start = nl + 1;
    }
    partial_.erase(0, start);
}

void SseParser::Line(std::string_view line, const std::function<void(std::string_view)>& on_event)
{
    if (line.empty()) {  // a blank line ends the event
        if (has_data_) on_event(data_);
        data_.clear();
        has_data_ = false;
        return;
    }
    if (line.front() == ':') return;  // comment
    std::string_view field = line.substr(0, line.find(':'));
    if (field != "data") return;  // event:, id:, retry: carry nothing opencode uses
    std::string_view value = field.size() < line.size() ? line.substr(field.size() + 1) : std::string_view();
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (has_data_) data_ += '\n';
    data_.append(value);
    has_data_ = true;
}

std::string_view PeekEventType(std::string_view data)
{
    // Inside a JSON string every '"' is escaped, so the first `"payload":{` is the key itself,
    // not text; the type must come before the properties, which may hold other "type" keys.
    constexpr std::string_view kPayload = "\"payload\":{", kType = "\"type\":\"", kProperties = "\"properties\":";
    // Only strings may come before either (no '{' but the event's own): else parse it to be sure.
    std::size_t payload = data.find(kPayload);
    if (payload == std::string_view::npos || data.find('{', 1) < payload) return {};
    std::string_view rest = data.substr(payload + kPayload.size());
    std::size_t type = rest.find(kType);
    if (type == std::string_view::npos || rest.substr(0, type).find_first_of("{[") != std::string_view::npos ||
        rest.substr(0, type).find(kProperties) != std::string_view::npos)
        return {};
    rest.remove_prefix(type + kType.size());
    std::size_t end = rest.find_first_of("\"\\");
    if (end == std::string_view::npos || rest[end] != '"') return {};  // an escape: parse it to be sure
    return rest.substr(0, end);
}

struct EventStream::Impl {
    explicit Impl(asio::any_io_executor ex) : stream(ex) {}
    beast::tcp_stream stream;
    bool closed{false};
};

EventStream::EventStream(asio::any_io_executor executor) : impl_(std::make_shared<Impl>(executor)) {}
EventStream::~EventStream() = default;

void EventStream::Close()
{
    impl_->closed = true;
    impl_->stream.close();
}

asio::awaitable<boost::system::error_code> EventStream::Run(const ServerEndpoint& server, const std::string& target,
                                                            std::chrono::milliseconds idle_timeout,
                                                            std::function<void()> connected, EventTypeFilter wanted,
                                                            std::function<void(json::value)> on_event)
{
    auto impl = impl_;  // keeps the stream alive while this coroutine runs
    boost::system::error_code ec;
    auto address = asio::ip::make_address(server.host, ec);
    if (ec) co_return ec;
    impl->stream.expires_after(std::chrono::seconds(10));
    std::tie(ec) = co_await impl->stream.async_connect(tcp::endpoint(address, static_cast<unsigned short>(server.port)), use_tuple);
    if (ec || impl->closed) co_return ec ? ec : asio::error::operation_aborted;
    auto req = MakeRequest(server, http::verb::get, target, "");
    req.set(http::field::accept, "text/event-stream");
    std::size_t n = 0;
    std::tie(ec, n) = co_await http::async_write(impl->stream, req, use_tuple);
    if (ec) co_return ec;

    beast::flat_buffer buffer;
    buffer.reserve(kReadBuffer);  // as in HttpCall: events of several kB, not 512-byte reads
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    std::tie(ec, n) = co_await http::async_read_header(impl->stream, buffer, parser, use_tuple);
    if (ec) co_return ec;
    if (parser.get().result_int() != 200) co_return make_error_code(boost::system::errc::protocol_error);
    if (connected) connected();

    SseParser sse;
    json::parser json_parser;  // one for the stream: its buffers are kept from event to event
    char chunk[16384];
    while (!impl->closed) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof chunk;
        impl->stream.expires_after(idle_timeout);
        std::tie(ec, n) = co_await http::async_read_some(impl->stream, buffer, parser, use_tuple);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) break;
        std::size_t got = sizeof chunk - parser.get().body().size;
        sse.Feed(std::string_view(chunk, got), [&](std::string_view data) {
            if (wanted) {
                std::string_view type = PeekEventType(data);
                if (!type.empty() && !wanted(type)) return;
            }
            boost::system::error_code perr;
            json_parser.reset();
            json_parser.write(data.data(), data.size(), perr);
            if (!perr) on_event(json_parser.release());
        });
        if (parser.is_done()) {
            ec = http::error::end_of_stream;
            break;
        }
    }
    if (impl->closed) ec = asio::error::operation_aborted;
    impl->stream.close();
    co_return ec;
}

}  // namespace ralph
