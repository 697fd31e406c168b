// Talking HTTP to an opencode server: one request with a deadline, and a Server-Sent Events
// stream reader (opencode-server-facts.md §1, §6). Every request carries Basic auth.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace ralph {

/// Where an opencode server answers and how to authenticate.
struct ServerEndpoint {
    std::string host{"127.0.0.1"};
    int port{0};
    std::string username{"opencode"};
    std::string password;  ///< empty: no Authorization header

    std::string url() const { return "http://" + host + ":" + std::to_string(port); }
    /// "Basic base64(user:password)", or "" without a password.
    std::string AuthorizationHeader() const;
};

struct HttpResult {
    boost::system::error_code error;  ///< transport failure or timeout
    int status{0};
    std::string body;

    bool ok() const { return !error && status >= 200 && status < 300; }
    /// The body parsed as JSON; null when it is not JSON.
    boost::json::value Json() const;
    /// "connection refused", "timed out", "HTTP 500: {...}" — for error messages and logs.
    std::string Describe() const;
};

/// One request on a fresh connection; the deadline covers connect, write and read.
/// `body` is sent as application/json when not empty. Never throws for network errors.
boost::asio::awaitable<HttpResult> HttpCall(const ServerEndpoint& server, boost::beast::http::verb method,
                                            const std::string& target, std::string body,
                                            std::chrono::milliseconds timeout);

/// Percent-encodes a query parameter value.
std::string UrlEncode(std::string_view value);

/// Splits an SSE byte stream into events and hands each event's data (its `data:` lines joined
/// by '\n') to the callback. Handles events split across reads, CRLF, comments and other fields.
class SseParser {
public:
    void Feed(std::string_view bytes, const std::function<void(std::string_view data)>& on_event);

private:
    void Line(std::string_view line, const std::function<void(std::string_view)>& on_event);
    std::string partial_;  ///< an unfinished line
    std::string data_;     ///< data lines of the event being read
    bool has_data_{false};
};

/// The `type` of a `/global/event` event's payload, read from its text without parsing it
/// (`{"directory":…,"payload":{"id":…,"type":"session.idle","properties":…}}`, the order
/// opencode writes). Empty when it is not found there: the event must then be parsed to know.
std::string_view PeekEventType(std::string_view data);

/// Which events a stream's reader wants, by their type (PeekEventType); the others are not parsed.
using EventTypeFilter = std::function<bool(std::string_view type)>;

/// A long-lived GET of an SSE endpoint (e.g. /global/event). Run() returns when the stream ends,
/// breaks, stays silent longer than `idle_timeout` (opencode sends a heartbeat every 10 s) or Close()
/// is called; each event's data is parsed as JSON and passed to on_event, unless its type is known
/// and `wanted` (when given) says no.
class EventStream {
public:
    explicit EventStream(boost::asio::any_io_executor executor);
    ~EventStream();
    /// Returns why the stream ended; `connected` is called once the response headers arrived.
    boost::asio::awaitable<boost::system::error_code> Run(const ServerEndpoint& server, const std::string& target,
                                                          std::chrono::milliseconds idle_timeout,
                                                          std::function<void()> connected, EventTypeFilter wanted,
                                                          std::function<void(boost::json::value)> on_event);
    void Close();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace ralph
