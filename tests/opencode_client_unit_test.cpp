// OpencodeClient: the requests it builds (every path segment and query value percent-encoded,
// checked against opencode-openapi.json), how answers and failures become a Status, and the HTTP
// client against a scripted server on an ephemeral port.
#include "daemon/iteration.h"
#include "daemon/opencode_client.h"
#include "daemon/run_checks.h"
#include "tests/fake_opencode_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>

namespace ralph {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// An id with every character that means something in a URL, and a directory with them and UTF-8.
const std::string kNastyId = "ses/a?b#c%d e";
const std::string kNastyIdEncoded = "ses%2Fa%3Fb%23c%25d%20e";
const std::string kNastyDir = "/home/u x/proj#1?a=b&c%/caf\xC3\xA9";
const std::string kNastyDirQuery = "?directory=%2Fhome%2Fu%20x%2Fproj%231%3Fa%3Db%26c%25%2Fcaf%C3%A9";

TEST(UnitOpencodeClient, TheEventTypeReadFromTheTextIsTheParsedOneOnEveryRecordedEvent)
{
    // The events exactly as opencode 1.18.33 wrote them (scripts/record-streams).
    std::map<std::string, int> unread;
    int events = 0;
    for (const char* name : {"promise", "tools", "permission"}) {
        std::ifstream in(std::string(RALPH_SOURCE_DIR) + "/tests/data/iteration/" + name + ".sse.txt");
        ASSERT_TRUE(in) << name;
        for (std::string line; std::getline(in, line); ++events) {
            const json::value v = json::parse(line);
            const std::string_view peeked = PeekEventType(line);
            ASSERT_FALSE(peeked.empty()) << line.substr(0, 200);
            EXPECT_EQ(peeked, std::string_view(v.at("payload").at("type").as_string()));
            if (!IterationMachine::Reads(peeked)) ++unread[std::string(peeked)];
        }
    }
    EXPECT_GT(events, 100);
    // What the stream then need not parse: opencode's bulkiest events.
    EXPECT_TRUE(unread.count("session.updated"));
    EXPECT_TRUE(unread.count("message.part.delta"));
    EXPECT_FALSE(unread.count("message.part.updated"));
    EXPECT_FALSE(unread.count("session.idle"));
}

TEST(UnitOpencodeClient, AnEventTypeThatCannotBeReadSafelyFromTheTextIsLeftToTheParser)
{
    EXPECT_EQ(PeekEventType(R"({"payload":{"id":"e","type":"session.idle","properties":{}}})"), "session.idle");
    EXPECT_EQ(PeekEventType(R"({"directory":"/a","payload":{"type":"x"}})"), "x");
    EXPECT_EQ(PeekEventType(R"({"payload":{"properties":{"type":"text"},"type":"session.idle"}})"), "");
    EXPECT_EQ(PeekEventType(R"({"directory":"/a{b}","payload":{"type":"x"}})"), "");  // a brace in a string
    EXPECT_EQ(PeekEventType(R"({"other":{"payload":{"type":"x"}},"payload":{"type":"y"}})"), "");
    EXPECT_EQ(PeekEventType(R"({"payload":{"extra":[1],"type":"x"}})"), "");
    EXPECT_EQ(PeekEventType(R"({"payload":{"type":"session.\u0069dle"}})"), "");  // an escape
    EXPECT_EQ(PeekEventType(R"({"payload":{"type":"unterminated)"), "");
    EXPECT_EQ(PeekEventType(R"({"directory":"\"payload\":{\"type\":\"x\"}"})"), "");
    EXPECT_EQ(PeekEventType(""), "");
}

TEST(UnitOpencodeClient, PercentEncodeKeepsOnlyUnreservedCharacters)
{
    EXPECT_EQ(PercentEncode("AZaz09-._~"), "AZaz09-._~");
    EXPECT_EQ(PercentEncode("/"), "%2F");
    EXPECT_EQ(PercentEncode("?"), "%3F");
    EXPECT_EQ(PercentEncode("#"), "%23");
    EXPECT_EQ(PercentEncode("%"), "%25");
    EXPECT_EQ(PercentEncode(" "), "%20");
    EXPECT_EQ(PercentEncode("+&="), "%2B%26%3D");
    EXPECT_EQ(PercentEncode("\xC3\xA9\xE2\x82\xAC"), "%C3%A9%E2%82%AC");  // é€
    EXPECT_EQ(PercentEncode(std::string("a\0b", 3)), "a%00b");
    EXPECT_EQ(PercentEncode(""), "");
    EXPECT_EQ(kNastyIdEncoded, PercentEncode(kNastyId));
}

TEST(UnitOpencodeClient, SessionRoutesEncodeTheIdAndTheDirectory)
{
    using namespace opencode_api;
    json::object body{{"title", "t"}};
    OpencodeRequest r = Prompt(kNastyId, kNastyDir, body);
    EXPECT_EQ(r.method, http::verb::post);
    EXPECT_EQ(r.target, "/session/" + kNastyIdEncoded + "/prompt_async" + kNastyDirQuery);
    EXPECT_EQ(json::parse(r.body), json::value(body));

    r = Abort(kNastyId, kNastyDir);
    EXPECT_EQ(r.method, http::verb::post);
    EXPECT_EQ(r.target, "/session/" + kNastyIdEncoded + "/abort" + kNastyDirQuery);
    EXPECT_EQ(r.body, "");

    r = Messages(kNastyId, kNastyDir);
    EXPECT_EQ(r.method, http::verb::get);
    EXPECT_EQ(r.target, "/session/" + kNastyIdEncoded + "/message" + kNastyDirQuery);

    r = GetSession(kNastyId);
    EXPECT_EQ(r.method, http::verb::get);
    EXPECT_EQ(r.target, "/session/" + kNastyIdEncoded);

    r = CreateSession(kNastyDir, body);
    EXPECT_EQ(r.method, http::verb::post);
    EXPECT_EQ(r.target, "/session" + kNastyDirQuery);
    EXPECT_EQ(json::parse(r.body), json::value(body));

    r = SessionStatus(kNastyDir);
    EXPECT_EQ(r.method, http::verb::get);
    EXPECT_EQ(r.target, "/session/status" + kNastyDirQuery);
}

TEST(UnitOpencodeClient, RequestRoutesEncodeTheRequestId)
{
    using namespace opencode_api;
    OpencodeRequest r = ReplyPermission("per/1?#", kNastyDir, "reject", "no");
    EXPECT_EQ(r.method, http::verb::post);
    EXPECT_EQ(r.target, "/permission/per%2F1%3F%23/reply" + kNastyDirQuery);
    EXPECT_EQ(json::parse(r.body), json::parse(R"({"reply":"reject","message":"no"})"));
    // The message is optional in the schema: none is sent when there is none.
    EXPECT_EQ(json::parse(ReplyPermission("per_1", "/p", "once", "").body), json::parse(R"({"reply":"once"})"));

    r = RejectQuestion("que 1", kNastyDir);
    EXPECT_EQ(r.method, http::verb::post);
    EXPECT_EQ(r.target, "/question/que%201/reject" + kNastyDirQuery);
    EXPECT_EQ(r.body, "");
}

TEST(UnitOpencodeClient, InstanceRoutesTakeTheDirectory)
{
    using namespace opencode_api;
    EXPECT_EQ(Providers(kNastyDir).target, "/config/providers" + kNastyDirQuery);
    EXPECT_EQ(Agents(kNastyDir).target, "/agent" + kNastyDirQuery);
    EXPECT_EQ(DisposeInstance(kNastyDir).target, "/instance/dispose" + kNastyDirQuery);
    EXPECT_EQ(DisposeInstance(kNastyDir).method, http::verb::post);
    EXPECT_EQ(Health().target, "/global/health");
    EXPECT_EQ(Health().method, http::verb::get);
    EXPECT_EQ(DisposeAll().target, "/global/dispose");
    EXPECT_EQ(DisposeAll().method, http::verb::post);
    EXPECT_EQ(GlobalEventTarget(), "/global/event");
}

TEST(UnitOpencodeClient, FailuresMapToUpstreamCodes)
{
    HttpResult timed_out;
    timed_out.error = beast::error::timeout;
    EXPECT_EQ(StatusOf(timed_out).code(), kUpstreamTimeout);
    EXPECT_EQ(StatusOf(timed_out).message(), "timed out");

    HttpResult refused;
    refused.error = asio::error::connection_refused;
    EXPECT_EQ(StatusOf(refused).code(), kUpstreamUnreachable);
    EXPECT_EQ(StatusOf(refused).message(), refused.Describe());
    EXPECT_EQ(StatusOf(refused).http_status(), 0);

    HttpResult unauthorized;
    unauthorized.status = 401;
    Status s = StatusOf(unauthorized);
    EXPECT_EQ(s.code(), kUpstreamHttpError);
    EXPECT_EQ(s.http_status(), 401);
    EXPECT_EQ(s.message(), "HTTP 401");

    HttpResult server_error;
    server_error.status = 500;
    server_error.body = R"({"name":"UnknownError"})";
    EXPECT_EQ(StatusOf(server_error).message(), R"(HTTP 500: {"name":"UnknownError"})");

    HttpResult not_json;
    not_json.status = 200;
    not_json.body = "<html>";
    EXPECT_TRUE(StatusOf(not_json).ok());
    Result<json::value> parsed = JsonOf(not_json);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), kUpstreamBadReply);
    EXPECT_EQ(parsed.status().http_status(), 200);

    HttpResult fine;
    fine.status = 204;
    EXPECT_TRUE(StatusOf(fine).ok());
    not_json.body = R"({"a":1})";
    Result<json::value> good = JsonOf(not_json);
    ASSERT_TRUE(good.ok());
    EXPECT_EQ(*good, json::parse(R"({"a":1})"));

    // Handlers see an upstream failure as SERVER_UNAVAILABLE, with its message.
    RpcError e = RpcErrorOf(StatusOf(refused));
    EXPECT_EQ(e.code, kServerUnavailable);
    EXPECT_EQ(std::string(e.what()), refused.Describe());
}

// ---------------------------------------------------------------------------------------------
// Against a scripted HTTP server

/// Answers each connection with the next scripted reply (status, body), or never (status 0),
/// and records each request's method, target and body.
class ScriptedServer {
public:
    struct Reply {
        int status;
        std::string body;
    };
    explicit ScriptedServer(asio::io_context& io) : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
    {
        asio::co_spawn(io, Serve(), asio::detached);
    }
    int port() const { return acceptor_.local_endpoint().port(); }
    void Stop() { acceptor_.close(); }

    std::vector<Reply> replies;
    std::vector<http::request<http::string_body>> requests;

private:
    asio::awaitable<void> Serve()
    {
        for (std::size_t i = 0;; ++i) {
            auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
            beast::flat_buffer buffer;
            http::request<http::string_body> req;
            auto [rec, n] = co_await http::async_read(socket, buffer, req, asio::as_tuple(asio::use_awaitable));
            if (rec) continue;
            requests.push_back(req);
            if (i >= replies.size() || replies[i].status == 0) {
                silent_.push_back(std::move(socket));  // keeps the connection open, unanswered
                continue;
            }
            http::response<http::string_body> res{static_cast<http::status>(replies[i].status), 11};
            res.body() = replies[i].body;
            res.prepare_payload();
            co_await http::async_write(socket, res, asio::as_tuple(asio::use_awaitable));
        }
    }
    tcp::acceptor acceptor_;
    std::vector<tcp::socket> silent_;
};

template <typename T>
asio::awaitable<void> Keep(asio::awaitable<T> work, std::optional<T>& out)
{
    out.emplace(co_await std::move(work));
}

/// Runs `work` to its end (the scripted server keeps the io_context busy, so it is stopped then).
template <typename T>
T RunToEnd(asio::io_context& io, asio::awaitable<T> work)
{
    std::optional<T> out;
    asio::co_spawn(io, Keep(std::move(work), out), [&](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
        io.stop();
    });
    io.restart();
    io.run();
    if (!out) throw std::runtime_error("the request never ended");
    return std::move(*out);
}

ServerEndpoint EndpointOn(int port)
{
    ServerEndpoint server;
    server.port = port;
    server.password = "pw";
    return server;
}

TEST(UnitOpencodeClient, HttpClientSendsEncodedRequestsAndReadsAnswers)
{
    asio::io_context io;
    ScriptedServer server(io);
    server.replies = {{200, R"({"id":"ses_1","title":"t"})"},
                      {204, ""},
                      {200, R"([{"info":{"role":"assistant"}}])"},
                      {200, R"({"healthy":true,"version":"1.18.33"})"}};
    HttpOpencodeClient client(io.get_executor(), EndpointOn(server.port()));

    Result<std::string> created = RunToEnd(io, client.CreateSession(kNastyDir, json::object{{"title", "t"}}));
    ASSERT_TRUE(created.ok()) << created.status().message();
    EXPECT_EQ(*created, "ses_1");
    Status prompted = RunToEnd(io, client.Prompt(kNastyId, kNastyDir, json::object{{"parts", json::array()}}));
    EXPECT_TRUE(prompted.ok()) << prompted.message();
    Result<json::value> messages = RunToEnd(io, client.Messages("ses_1", "/p"));
    ASSERT_TRUE(messages.ok()) << messages.status().message();
    ASSERT_TRUE(messages->is_array());
    EXPECT_EQ(messages->as_array().size(), 1u);
    Result<std::string> version = RunToEnd(io, client.Health(5s));
    ASSERT_TRUE(version.ok()) << version.status().message();
    EXPECT_EQ(*version, "1.18.33");

    ASSERT_EQ(server.requests.size(), 4u);
    EXPECT_EQ(server.requests[0].method(), http::verb::post);
    EXPECT_EQ(server.requests[0].target(), "/session" + kNastyDirQuery);
    EXPECT_EQ(server.requests[0][http::field::content_type], "application/json");
    EXPECT_EQ(server.requests[0][http::field::authorization], "Basic b3BlbmNvZGU6cHc=");  // opencode:pw
    EXPECT_EQ(server.requests[1].target(), "/session/" + kNastyIdEncoded + "/prompt_async" + kNastyDirQuery);
    EXPECT_EQ(server.requests[2].target(), "/session/ses_1/message?directory=%2Fp");
    EXPECT_EQ(server.requests[3].target(), "/global/health");
}

TEST(UnitOpencodeClient, HttpClientMapsBadAnswers)
{
    asio::io_context io;
    ScriptedServer server(io);
    server.replies = {{500, R"({"name":"UnknownError"})"},
                      {200, R"({"title":"no id"})"},
                      {404, R"({"name":"NotFoundError"})"},
                      {200, R"({"healthy":false})"},
                      {200, "not json"}};
    HttpOpencodeClient client(io.get_executor(), EndpointOn(server.port()));

    Result<std::string> created = RunToEnd(io, client.CreateSession("/p", json::object()));
    ASSERT_FALSE(created.ok());
    EXPECT_EQ(created.status().code(), kUpstreamHttpError);
    EXPECT_EQ(created.status().http_status(), 500);
    EXPECT_EQ(created.status().message(), R"(HTTP 500: {"name":"UnknownError"})");

    created = RunToEnd(io, client.CreateSession("/p", json::object()));
    ASSERT_FALSE(created.ok());
    EXPECT_EQ(created.status().code(), kUpstreamBadReply);
    EXPECT_EQ(created.status().message(), R"(HTTP 200: {"title":"no id"})");

    Result<json::value> session = RunToEnd(io, client.GetSession("ses_gone", 5s));
    ASSERT_FALSE(session.ok());
    EXPECT_EQ(session.status().http_status(), 404);

    Result<std::string> health = RunToEnd(io, client.Health(5s));
    ASSERT_FALSE(health.ok());
    EXPECT_EQ(health.status().code(), kUpstreamBadReply);

    Result<json::value> agents = RunToEnd(io, client.Agents("/p"));
    ASSERT_FALSE(agents.ok());
    EXPECT_EQ(agents.status().code(), kUpstreamBadReply);
}

TEST(UnitOpencodeClient, HttpClientReportsUnreachableAndTimeout)
{
    asio::io_context io;
    ScriptedServer silent(io);
    silent.replies = {{0, ""}};
    HttpOpencodeClient slow(io.get_executor(), EndpointOn(silent.port()));
    Result<std::string> health = RunToEnd(io, slow.Health(50ms));
    ASSERT_FALSE(health.ok());
    EXPECT_EQ(health.status().code(), kUpstreamTimeout);
    EXPECT_EQ(health.status().message(), "timed out");

    // A port nobody listens on any more.
    int closed_port = 0;
    {
        tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        closed_port = probe.local_endpoint().port();
    }
    HttpOpencodeClient gone(io.get_executor(), EndpointOn(closed_port));
    Status aborted = RunToEnd(io, gone.Abort("ses_1", "/p"));
    ASSERT_FALSE(aborted.ok());
    EXPECT_EQ(aborted.code(), kUpstreamUnreachable);
    EXPECT_EQ(aborted.http_status(), 0);
    silent.Stop();
}

// The model and agent checks through a fake client: what they ask and how failures read.
TEST(UnitOpencodeClient, ModelAndAgentChecksUseTheClient)
{
    asio::io_context io;
    FakeOpencodeClient opencode;
    opencode.providers = json::parse(R"({"providers":[{"id":"fake","models":{"m":{}}}]})");
    opencode.agents = json::parse(R"([{"name":"build"}])");
    RunSettings settings;
    settings.model = "fake/m";
    settings.agent = "build";
    Status ok = RunToEnd(io, CheckModelAndAgent(opencode, "/proj", settings));
    EXPECT_TRUE(ok.ok()) << ok.message();
    EXPECT_EQ(*opencode.calls, (std::vector<std::string>{"Providers /proj", "Agents /proj"}));

    settings.agent = "biuld";
    Status unknown = RunToEnd(io, CheckModelAndAgent(opencode, "/proj", settings));
    EXPECT_EQ(unknown.code(), kInvalidParams);
    EXPECT_NE(unknown.message().find("did you mean 'build'?"), std::string::npos) << unknown.message();

    opencode.providers = Status(kUpstreamUnreachable, "connection refused");
    Status unavailable = RunToEnd(io, CheckModelAndAgent(opencode, "/proj", settings));
    EXPECT_EQ(unavailable.code(), kServerUnavailable);
    EXPECT_EQ(unavailable.message(), "cannot check the run's model and agent: GET /config/providers on the opencode "
                                     "server failed: connection refused");

    // Nothing is asked when neither is set.
    opencode.calls->clear();
    Status nothing = RunToEnd(io, CheckModelAndAgent(opencode, "/proj", RunSettings{}));
    EXPECT_TRUE(nothing.ok());
    EXPECT_TRUE(opencode.calls->empty());
}

}  // namespace
}  // namespace ralph
