#include "daemon/opencode_client.h"

#include "common/json_util.h"

#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/error.hpp>

namespace ralph {

namespace asio = boost::asio;
namespace json = boost::json;
namespace http = boost::beast::http;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

constexpr milliseconds kRequestTimeout = seconds(30);  // creating, prompting, reading a session
constexpr milliseconds kAbortTimeout = seconds(10);

std::string DirectoryQuery(const std::string& directory) { return "?directory=" + PercentEncode(directory); }

}  // namespace

std::string PercentEncode(std::string_view value)
{
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    out.reserve(value.size());
    for (unsigned char c : value) {
        bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                          c == '.' || c == '_' || c == '~';
        if (unreserved) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

namespace opencode_api {

// GCC 12 miscompiles nested braced JSON initialisers inside coroutines ("array used as
// initializer"), so bodies are built here, outside them.
json::object SessionBody(const std::string& title)
{
    json::array rules;
    for (auto [permission, action] : {std::pair{"external_directory", "allow"}, std::pair{"question", "deny"},
                                      std::pair{"doom_loop", "allow"}}) {
        rules.push_back(json::object{{"permission", permission}, {"pattern", "*"}, {"action", action}});
    }
    json::object body;
    body["title"] = title;
    body["permission"] = std::move(rules);
    return body;
}

json::object PromptBody(const std::string& text, const std::string& model, const std::string& agent)
{
    json::object part;
    part["type"] = "text";
    part["text"] = text;
    json::object body;
    body["parts"] = json::array{part};
    if (auto slash = model.find('/'); slash != std::string::npos) {
        json::object m;
        m["providerID"] = model.substr(0, slash);
        m["modelID"] = model.substr(slash + 1);
        body["model"] = std::move(m);
    }
    if (!agent.empty()) body["agent"] = agent;
    return body;
}

OpencodeRequest Health() { return {http::verb::get, "/global/health", ""}; }
OpencodeRequest DisposeAll() { return {http::verb::post, "/global/dispose", ""}; }
OpencodeRequest DisposeInstance(const std::string& directory)
{
    return {http::verb::post, "/instance/dispose" + DirectoryQuery(directory), ""};
}
OpencodeRequest CreateSession(const std::string& directory, const json::object& body)
{
    return {http::verb::post, "/session" + DirectoryQuery(directory), json::serialize(body)};
}
OpencodeRequest GetSession(const std::string& session_id)
{
    return {http::verb::get, "/session/" + PercentEncode(session_id), ""};
}
OpencodeRequest SessionStatus(const std::string& directory)
{
    return {http::verb::get, "/session/status" + DirectoryQuery(directory), ""};
}
OpencodeRequest Prompt(const std::string& session_id, const std::string& directory, const json::object& body)
{
    return {http::verb::post, "/session/" + PercentEncode(session_id) + "/prompt_async" + DirectoryQuery(directory),
            json::serialize(body)};
}
OpencodeRequest Abort(const std::string& session_id, const std::string& directory)
{
    return {http::verb::post, "/session/" + PercentEncode(session_id) + "/abort" + DirectoryQuery(directory), ""};
}
OpencodeRequest Messages(const std::string& session_id, const std::string& directory)
{
    return {http::verb::get, "/session/" + PercentEncode(session_id) + "/message" + DirectoryQuery(directory), ""};
}
OpencodeRequest ReplyPermission(const std::string& request_id, const std::string& directory, const std::string& reply,
                                const std::string& message)
{
    json::object body;
    body["reply"] = reply;
    if (!message.empty()) body["message"] = message;
    return {http::verb::post, "/permission/" + PercentEncode(request_id) + "/reply" + DirectoryQuery(directory),
            json::serialize(body)};
}
OpencodeRequest RejectQuestion(const std::string& request_id, const std::string& directory)
{
    return {http::verb::post, "/question/" + PercentEncode(request_id) + "/reject" + DirectoryQuery(directory), ""};
}
OpencodeRequest Providers(const std::string& directory)
{
    return {http::verb::get, "/config/providers" + DirectoryQuery(directory), ""};
}
OpencodeRequest Agents(const std::string& directory) { return {http::verb::get, "/agent" + DirectoryQuery(directory), ""}; }
std::string GlobalEventTarget() { return "/global/event"; }

}  // namespace opencode_api

Status StatusOf(const HttpResult& r)
{
    if (r.error == boost::beast::error::timeout) return Status(kUpstreamTimeout, r.Describe());
    if (r.error) return Status(kUpstreamUnreachable, r.Describe());
    if (!r.ok()) return Status(kUpstreamHttpError, r.Describe(), r.status);
    return Status::Ok();
}

Result<json::value> JsonOf(const HttpResult& r)
{
    if (Status s = StatusOf(r); !s.ok()) return s;
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    if (ec) return Status(kUpstreamBadReply, r.Describe(), r.status);
    return v;
}

namespace {

class HttpEventStream final : public OpencodeEventStream {
public:
    HttpEventStream(asio::any_io_executor executor, ServerEndpoint server)
        : stream_(std::move(executor)), server_(std::move(server))
    {
    }
    asio::awaitable<Status> Run(milliseconds idle_timeout, std::function<void()> connected, EventTypeFilter wanted,
                                std::function<void(json::value)> on_event) override
    {
        auto ec = co_await stream_.Run(server_, opencode_api::GlobalEventTarget(), idle_timeout, std::move(connected),
                                       std::move(wanted), std::move(on_event));
        if (ec == boost::beast::error::timeout) co_return Status(kUpstreamTimeout, ec.message());
        if (ec) co_return Status(kUpstreamUnreachable, ec.message());
        co_return Status::Ok();
    }
    void Close() override { stream_.Close(); }

private:
    EventStream stream_;
    ServerEndpoint server_;
};

}  // namespace

HttpOpencodeClient::HttpOpencodeClient(asio::any_io_executor executor, ServerEndpoint server)
    : executor_(std::move(executor)), server_(std::move(server))
{
}

asio::awaitable<HttpResult> HttpOpencodeClient::Send(OpencodeRequest request, milliseconds timeout)
{
    co_return co_await HttpCall(server_, request.method, request.target, std::move(request.body), timeout);
}

asio::awaitable<Status> HttpOpencodeClient::Call(OpencodeRequest request, milliseconds timeout)
{
    co_return StatusOf(co_await Send(std::move(request), timeout));
}

asio::awaitable<Result<json::value>> HttpOpencodeClient::CallJson(OpencodeRequest request, milliseconds timeout)
{
    co_return JsonOf(co_await Send(std::move(request), timeout));
}

asio::awaitable<Result<std::string>> HttpOpencodeClient::Health(milliseconds timeout)
{
    HttpResult r = co_await Send(opencode_api::Health(), timeout);
    if (Status s = StatusOf(r); !s.ok()) co_return s;
    json::value v = r.Json();
    const json::value* healthy = At(v, "healthy");
    if (!healthy || !healthy->is_bool() || !healthy->as_bool()) co_return Status(kUpstreamBadReply, r.Describe(), r.status);
    co_return Str(At(v, "version"));
}

asio::awaitable<Status> HttpOpencodeClient::DisposeAll(milliseconds timeout)
{
    co_return co_await Call(opencode_api::DisposeAll(), timeout);
}

asio::awaitable<Status> HttpOpencodeClient::DisposeInstance(const std::string& directory)
{
    co_return co_await Call(opencode_api::DisposeInstance(directory), kAbortTimeout);
}

asio::awaitable<Result<std::string>> HttpOpencodeClient::CreateSession(const std::string& directory,
                                                                      const json::object& body)
{
    HttpResult r = co_await Send(opencode_api::CreateSession(directory, body), kRequestTimeout);
    if (Status s = StatusOf(r); !s.ok()) co_return s;
    std::string id = Str(At(r.Json(), "id"));
    if (id.empty()) co_return Status(kUpstreamBadReply, r.Describe(), r.status);
    co_return id;
}

asio::awaitable<Result<json::value>> HttpOpencodeClient::GetSession(const std::string& session_id, milliseconds timeout)
{
    co_return co_await CallJson(opencode_api::GetSession(session_id), timeout);
}

asio::awaitable<Result<json::value>> HttpOpencodeClient::SessionStatus(const std::string& directory)
{
    co_return co_await CallJson(opencode_api::SessionStatus(directory), kRequestTimeout);
}

asio::awaitable<Status> HttpOpencodeClient::Prompt(const std::string& session_id, const std::string& directory,
                                                   const json::object& body)
{
    co_return co_await Call(opencode_api::Prompt(session_id, directory, body), kRequestTimeout);
}

asio::awaitable<Status> HttpOpencodeClient::Abort(const std::string& session_id, const std::string& directory)
{
    co_return co_await Call(opencode_api::Abort(session_id, directory), kAbortTimeout);
}

asio::awaitable<Result<json::value>> HttpOpencodeClient::Messages(const std::string& session_id,
                                                                  const std::string& directory)
{
    co_return co_await CallJson(opencode_api::Messages(session_id, directory), kRequestTimeout);
}

asio::awaitable<Status> HttpOpencodeClient::ReplyPermission(const std::string& request_id, const std::string& directory,
                                                            const std::string& reply, const std::string& message)
{
    co_return co_await Call(opencode_api::ReplyPermission(request_id, directory, reply, message), kRequestTimeout);
}

asio::awaitable<Status> HttpOpencodeClient::RejectQuestion(const std::string& request_id, const std::string& directory)
{
    co_return co_await Call(opencode_api::RejectQuestion(request_id, directory), kRequestTimeout);
}

asio::awaitable<Result<json::value>> HttpOpencodeClient::Providers(const std::string& directory)
{
    co_return co_await CallJson(opencode_api::Providers(directory), kRequestTimeout);
}

asio::awaitable<Result<json::value>> HttpOpencodeClient::Agents(const std::string& directory)
{
    co_return co_await CallJson(opencode_api::Agents(directory), kRequestTimeout);
}

std::unique_ptr<OpencodeEventStream> HttpOpencodeClient::Events()
{
    return std::make_unique<HttpEventStream>(executor_, server_);
}

OpencodeClientFactory HttpOpencodeClients(asio::any_io_executor executor)
{
    return [executor](const ServerEndpoint& server) { return std::make_unique<HttpOpencodeClient>(executor, server); };
}

asio::awaitable<Result<std::string>> OpencodeHealth(const ServerEndpoint& server, milliseconds timeout)
{
    HttpOpencodeClient client(co_await asio::this_coro::executor, server);
    co_return co_await client.Health(timeout);
}

asio::awaitable<Status> OpencodeDisposeAll(const ServerEndpoint& server, milliseconds timeout)
{
    HttpOpencodeClient client(co_await asio::this_coro::executor, server);
    co_return co_await client.DisposeAll(timeout);
}

}  // namespace ralph
