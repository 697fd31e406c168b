// OpencodeClient: every request ralphd makes to an opencode server, typed (opencode-openapi.json,
// opencode-server-facts.md). An interface, so that unit tests of its users give a fake;
// HttpOpencodeClient speaks HTTP over HttpCall/EventStream. Nothing throws for a network error:
// a failure is a Status with an UpstreamCode (common/status.h) and a message from HttpResult's
// Describe() ("connection refused", "timed out", "HTTP 500: {...}").
//
// Every path segment and query value goes through PercentEncode, and every request is built by
// one function of the `opencode_api` namespace below, which the unit tests check directly.
#pragma once

#include "common/status.h"
#include "daemon/opencode_http.h"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace ralph {

/// Percent-encodes everything but RFC 3986's unreserved characters (ALPHA DIGIT - . _ ~), '/'
/// included: for one path segment or one query value. UTF-8 is encoded byte by byte.
std::string PercentEncode(std::string_view value);

/// One request to opencode, before it is sent.
struct OpencodeRequest {
    boost::beast::http::verb method{boost::beast::http::verb::get};
    std::string target;  ///< path and query, every part percent-encoded
    std::string body;    ///< JSON, or "" for none
};

/// The request of each endpoint. `directory` is the project the request is for: sent as
/// `?directory=` (instance routes need it; session routes take the session's own directory).
namespace opencode_api {
OpencodeRequest Health();
OpencodeRequest DisposeAll();
OpencodeRequest DisposeInstance(const std::string& directory);
OpencodeRequest CreateSession(const std::string& directory, const boost::json::object& body);
OpencodeRequest GetSession(const std::string& session_id);
OpencodeRequest SessionStatus(const std::string& directory);
OpencodeRequest Prompt(const std::string& session_id, const std::string& directory, const boost::json::object& body);
OpencodeRequest Abort(const std::string& session_id, const std::string& directory);
OpencodeRequest Messages(const std::string& session_id, const std::string& directory);
OpencodeRequest ReplyPermission(const std::string& request_id, const std::string& directory, const std::string& reply,
                                const std::string& message);
OpencodeRequest RejectQuestion(const std::string& request_id, const std::string& directory);
OpencodeRequest Providers(const std::string& directory);
OpencodeRequest Agents(const std::string& directory);
/// The target of the Server-Sent Events stream of every directory's events.
std::string GlobalEventTarget();

/// A session body with rules that can never block an unattended loop (opencode-server-facts.md
/// §8); anything still asked is rejected by the iteration.
boost::json::object SessionBody(const std::string& title);
/// A prompt body, with the model as the nested object opencode reads (flat fields are ignored).
boost::json::object PromptBody(const std::string& text, const std::string& model, const std::string& agent);
}  // namespace opencode_api

/// How an answer maps to a Status: transport failures and timeouts, then any status but 2xx.
Status StatusOf(const HttpResult& result);
/// The answer's body as JSON; kUpstreamBadReply when it is none.
Result<boost::json::value> JsonOf(const HttpResult& result);

/// The stream of opencode's events (`GET /global/event`), each `{directory, payload}`.
class OpencodeEventStream {
public:
    virtual ~OpencodeEventStream() = default;
    /// Reads until the stream ends, breaks, is silent longer than `idle_timeout` or Close() is
    /// called; the Status says why it ended. `connected` is called once the stream is open. Events
    /// whose type `wanted` refuses may be dropped unparsed.
    virtual boost::asio::awaitable<Status> Run(std::chrono::milliseconds idle_timeout, std::function<void()> connected,
                                               EventTypeFilter wanted,
                                               std::function<void(boost::json::value)> on_event) = 0;
    virtual void Close() = 0;
};

class OpencodeClient {
public:
    virtual ~OpencodeClient() = default;
    virtual const ServerEndpoint& endpoint() const = 0;

    /// `GET /global/health`: the server's version when it says it is healthy.
    virtual boost::asio::awaitable<Result<std::string>> Health(std::chrono::milliseconds timeout) = 0;
    /// `POST /global/dispose`: aborts every session and kills their tool processes.
    virtual boost::asio::awaitable<Status> DisposeAll(std::chrono::milliseconds timeout) = 0;
    /// `POST /instance/dispose?directory=`: the same for one project.
    virtual boost::asio::awaitable<Status> DisposeInstance(const std::string& directory) = 0;
    /// `POST /session?directory=`: the new session's id.
    virtual boost::asio::awaitable<Result<std::string>> CreateSession(const std::string& directory,
                                                                      const boost::json::object& body) = 0;
    /// `GET /session/{id}`: the session (a 404 when opencode no longer has it).
    virtual boost::asio::awaitable<Result<boost::json::value>> GetSession(const std::string& session_id,
                                                                          std::chrono::milliseconds timeout) = 0;
    /// `GET /session/status?directory=`: busy and retrying sessions by id (idle ones left out).
    virtual boost::asio::awaitable<Result<boost::json::value>> SessionStatus(const std::string& directory) = 0;
    /// `POST /session/{id}/prompt_async`: accepted, to be followed on the event stream.
    virtual boost::asio::awaitable<Status> Prompt(const std::string& session_id, const std::string& directory,
                                                  const boost::json::object& body) = 0;
    /// `POST /session/{id}/abort`.
    virtual boost::asio::awaitable<Status> Abort(const std::string& session_id, const std::string& directory) = 0;
    /// `GET /session/{id}/message`: the session's messages, each `{info, parts}`.
    virtual boost::asio::awaitable<Result<boost::json::value>> Messages(const std::string& session_id,
                                                                        const std::string& directory) = 0;
    /// `POST /permission/{id}/reply` with `reply` (once, always, reject) and a message for the model.
    virtual boost::asio::awaitable<Status> ReplyPermission(const std::string& request_id, const std::string& directory,
                                                           const std::string& reply, const std::string& message) = 0;
    /// `POST /question/{id}/reject`.
    virtual boost::asio::awaitable<Status> RejectQuestion(const std::string& request_id,
                                                          const std::string& directory) = 0;
    /// `GET /config/providers?directory=`: `{providers: [{id, models: {...}}], default}`.
    virtual boost::asio::awaitable<Result<boost::json::value>> Providers(const std::string& directory) = 0;
    /// `GET /agent?directory=`: `[{name, hidden, ...}]`.
    virtual boost::asio::awaitable<Result<boost::json::value>> Agents(const std::string& directory) = 0;
    /// A new, unopened `GET /global/event` stream.
    virtual std::unique_ptr<OpencodeEventStream> Events() = 0;
};

/// Makes the client of a server; the loop engine and the event hub ask it for each endpoint.
using OpencodeClientFactory = std::function<std::unique_ptr<OpencodeClient>(const ServerEndpoint&)>;

/// OpencodeClient over HTTP (opencode_http.h). Cheap to make: it holds the endpoint only, and
/// every request is one connection.
class HttpOpencodeClient final : public OpencodeClient {
public:
    HttpOpencodeClient(boost::asio::any_io_executor executor, ServerEndpoint server);

    const ServerEndpoint& endpoint() const override { return server_; }
    boost::asio::awaitable<Result<std::string>> Health(std::chrono::milliseconds timeout) override;
    boost::asio::awaitable<Status> DisposeAll(std::chrono::milliseconds timeout) override;
    boost::asio::awaitable<Status> DisposeInstance(const std::string& directory) override;
    boost::asio::awaitable<Result<std::string>> CreateSession(const std::string& directory,
                                                              const boost::json::object& body) override;
    boost::asio::awaitable<Result<boost::json::value>> GetSession(const std::string& session_id,
                                                                  std::chrono::milliseconds timeout) override;
    boost::asio::awaitable<Result<boost::json::value>> SessionStatus(const std::string& directory) override;
    boost::asio::awaitable<Status> Prompt(const std::string& session_id, const std::string& directory,
                                          const boost::json::object& body) override;
    boost::asio::awaitable<Status> Abort(const std::string& session_id, const std::string& directory) override;
    boost::asio::awaitable<Result<boost::json::value>> Messages(const std::string& session_id,
                                                                const std::string& directory) override;
    boost::asio::awaitable<Status> ReplyPermission(const std::string& request_id, const std::string& directory,
                                                   const std::string& reply, const std::string& message) override;
    boost::asio::awaitable<Status> RejectQuestion(const std::string& request_id, const std::string& directory) override;
    boost::asio::awaitable<Result<boost::json::value>> Providers(const std::string& directory) override;
    boost::asio::awaitable<Result<boost::json::value>> Agents(const std::string& directory) override;
    std::unique_ptr<OpencodeEventStream> Events() override;

private:
    boost::asio::awaitable<HttpResult> Send(OpencodeRequest request, std::chrono::milliseconds timeout);
    boost::asio::awaitable<Status> Call(OpencodeRequest request, std::chrono::milliseconds timeout);
    boost::asio::awaitable<Result<boost::json::value>> CallJson(OpencodeRequest request,
                                                                std::chrono::milliseconds timeout);

    boost::asio::any_io_executor executor_;
    ServerEndpoint server_;
};

/// The factory of HttpOpencodeClients on `executor`.
OpencodeClientFactory HttpOpencodeClients(boost::asio::any_io_executor executor);

/// Health and dispose for the supervisor, which has an endpoint and no factory.
boost::asio::awaitable<Result<std::string>> OpencodeHealth(const ServerEndpoint& server,
                                                           std::chrono::milliseconds timeout);
boost::asio::awaitable<Status> OpencodeDisposeAll(const ServerEndpoint& server, std::chrono::milliseconds timeout);

}  // namespace ralph
