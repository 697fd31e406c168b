// The codec and dispatcher answer every example of the JSON-RPC 2.0 specification exactly.
#include "common/errors.h"
#include "common/jsonrpc.h"
#include "daemon/daemon.h"
#include "daemon/rpc_table.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

namespace ralph {
namespace {

namespace json = boost::json;

// The spec's example methods; positional arrays arrive as params, so handlers read the raw value.
struct ExampleTable {
    ExampleTable()
    {
        table.Add(methods);
    }
    static asio::awaitable<json::value> Sum(CallContext&, const json::object&) { co_return 7; }
    static asio::awaitable<json::value> GetData(CallContext&, const json::object&)
    {
        co_return json::array{"hello", 5};
    }
    static asio::awaitable<json::value> Nothing(CallContext&, const json::object&) { co_return nullptr; }
    std::vector<RpcMethod> methods = {
        {{"sum", "", {}, "", true}, Sum},
        {{"notify_hello", "", {}, "", true}, Nothing},
        {{"get_data", "", {}, "", true}, GetData},
        {{"notify_sum", "", {}, "", true}, Nothing},
        {{"update", "", {}, "", true}, Nothing},
    };
    RpcTable table;
};

std::optional<std::string> Answer(const RpcTable& table, const std::string& line)
{
    asio::io_context io;
    Daemon daemon(DaemonOptions{});
    CallContext ctx{daemon, {}, {}};
    auto future = asio::co_spawn(io, HandleLine(table, ctx, line), asio::use_future);
    io.run();
    return future.get();
}

json::value J(const std::string& s) { return json::parse(s); }

TEST(UnitJsonRpc, ParsesPositionalAndNamedRequests)
{
    auto m = jsonrpc::Parse(R"({"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1})");
    ASSERT_FALSE(m.error);
    ASSERT_EQ(m.items.size(), 1u);
    auto& r = std::get<jsonrpc::Request>(m.items[0]);
    EXPECT_EQ(r.method, "subtract");
    EXPECT_EQ(r.params, J("[42, 23]"));
    EXPECT_EQ(r.id, J("1"));
    EXPECT_FALSE(r.notification);

    m = jsonrpc::Parse(R"({"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3})");
    auto& named = std::get<jsonrpc::Request>(m.items[0]);
    EXPECT_EQ(named.params, J(R"({"subtrahend": 23, "minuend": 42})"));

    m = jsonrpc::Parse(R"({"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]})");
    EXPECT_TRUE(std::get<jsonrpc::Request>(m.items[0]).notification);
    m = jsonrpc::Parse(R"({"jsonrpc": "2.0", "method": "foobar"})");
    EXPECT_TRUE(std::get<jsonrpc::Request>(m.items[0]).notification);
}

TEST(UnitJsonRpc, ResponseShape)
{
    EXPECT_EQ(json::value(jsonrpc::MakeResult(1, 19)), J(R"({"jsonrpc": "2.0", "result": 19, "id": 1})"));
    EXPECT_EQ(json::value(jsonrpc::MakeError("1", -32601, "Method not found")),
              J(R"({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"})"));
}

TEST(UnitJsonRpc, NonExistentMethod)
{
    ExampleTable t;
    auto reply = Answer(t.table, R"({"jsonrpc": "2.0", "method": "foobar", "id": "1"})");
    ASSERT_TRUE(reply);
    auto v = J(*reply);
    EXPECT_EQ(v.at("error").at("code"), -32601);
    EXPECT_EQ(v.at("id"), "1");
}

TEST(UnitJsonRpc, InvalidJson)
{
    ExampleTable t;
    auto v = J(*Answer(t.table, R"({"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz])"));
    EXPECT_EQ(v.at("error").at("code"), -32700);
    EXPECT_TRUE(v.at("id").is_null());
}

TEST(UnitJsonRpc, InvalidRequestObject)
{
    ExampleTable t;
    auto v = J(*Answer(t.table, R"({"jsonrpc": "2.0", "method": 1, "params": "bar"})"));
    EXPECT_EQ(v.at("error").at("code"), -32600);
    EXPECT_TRUE(v.at("id").is_null());
}

TEST(UnitJsonRpc, BatchInvalidJson)
{
    ExampleTable t;
    auto v = J(*Answer(t.table, R"([
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
])"));
    EXPECT_EQ(v.at("error").at("code"), -32700);
    EXPECT_TRUE(v.at("id").is_null());
}

TEST(UnitJsonRpc, EmptyArray)
{
    ExampleTable t;
    auto v = J(*Answer(t.table, "[]"));
    ASSERT_TRUE(v.is_object());
    EXPECT_EQ(v.at("error").at("code"), -32600);
    EXPECT_TRUE(v.at("id").is_null());
}

TEST(UnitJsonRpc, InvalidBatchNotEmpty)
{
    ExampleTable t;
    auto v = J(*Answer(t.table, "[1]"));
    ASSERT_TRUE(v.is_array());
    ASSERT_EQ(v.as_array().size(), 1u);
    EXPECT_EQ(v.as_array()[0].at("error").at("code"), -32600);
}

TEST(UnitJsonRpc, InvalidBatch)
{
    ExampleTable t;
    auto v = J(*Answer(t.table, "[1,2,3]"));
    ASSERT_TRUE(v.is_array());
    ASSERT_EQ(v.as_array().size(), 3u);
    for (auto& e : v.as_array()) {
        EXPECT_EQ(e.at("error").at("code"), -32600);
        EXPECT_TRUE(e.at("id").is_null());
    }
}

TEST(UnitJsonRpc, MixedBatch)
{
    ExampleTable t;
    auto v = J(*Answer(t.table, R"([
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ])"));
    ASSERT_TRUE(v.is_array());
    auto& a = v.as_array();
    ASSERT_EQ(a.size(), 5u);  // the notification gets no reply
    EXPECT_EQ(a[0], J(R"({"jsonrpc": "2.0", "result": 7, "id": "1"})"));
    EXPECT_EQ(a[1].at("error").at("code"), -32601);  // subtract is not in this table
    EXPECT_EQ(a[1].at("id"), "2");
    EXPECT_EQ(a[2].at("error").at("code"), -32600);
    EXPECT_TRUE(a[2].at("id").is_null());
    EXPECT_EQ(a[3].at("error").at("code"), -32601);
    EXPECT_EQ(a[3].at("id"), "5");
    EXPECT_EQ(a[4], J(R"({"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"})"));
}

TEST(UnitJsonRpc, AllNotificationBatchHasNoReply)
{
    ExampleTable t;
    EXPECT_FALSE(Answer(t.table, R"([
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ])"));
    EXPECT_FALSE(Answer(t.table, R"({"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]})"));
    // Even an unknown method called as a notification gets no reply.
    EXPECT_FALSE(Answer(t.table, R"({"jsonrpc": "2.0", "method": "foobar"})"));
}

TEST(UnitJsonRpc, RejectsWrongVersionAndBadIds)
{
    ExampleTable t;
    auto v = J(*Answer(t.table, R"({"jsonrpc": "1.0", "method": "sum", "id": 4})"));
    EXPECT_EQ(v.at("error").at("code"), -32600);
    EXPECT_EQ(v.at("id"), 4);
    v = J(*Answer(t.table, R"({"jsonrpc": "2.0", "method": "sum", "id": {"a": 1}})"));
    EXPECT_EQ(v.at("error").at("code"), -32600);
    EXPECT_TRUE(v.at("id").is_null());
    v = J(*Answer(t.table, R"({"jsonrpc": "2.0", "method": "sum", "id": null})"));
    EXPECT_EQ(v.at("result"), 7);
    EXPECT_TRUE(v.at("id").is_null());
}

TEST(UnitJsonRpc, ParamsCheckedAgainstTheSpec)
{
    asio::io_context io;
    RpcTable table;
    RegisterAllMethods(table);
    // daemon.ping takes no params: unknown names are refused with the method named.
    auto v = J(*Answer(table, R"({"jsonrpc": "2.0", "method": "daemon.ping", "params": {"x": 1}, "id": 1})"));
    EXPECT_EQ(v.at("error").at("code"), -32602);
    EXPECT_NE(std::string(v.at("error").at("message").as_string()).find("'x'"), std::string::npos);
    v = J(*Answer(table, R"({"jsonrpc": "2.0", "method": "daemon.ping", "params": [1], "id": 2})"));
    EXPECT_EQ(v.at("error").at("code"), -32602);
    v = J(*Answer(table, R"({"jsonrpc": "2.0", "method": "daemon.ping", "params": "x", "id": 3})"));
    EXPECT_EQ(v.at("error").at("code"), -32600);
}

TEST(UnitJsonRpc, CheckParamsNamesTheParameter)
{
    MethodSpec spec{"run.get", "", {{"run", ParamType::StringOrInteger, true, "", ""},
                                     {"follow", ParamType::Boolean, false, "false", ""}}, ""};
    EXPECT_NO_THROW(CheckParams(spec, J(R"({"run": 3})")));
    EXPECT_NO_THROW(CheckParams(spec, J(R"({"run": "fix-tests", "follow": true})")));
    try {
        CheckParams(spec, J(R"({"follow": true})"));
        FAIL();
    } catch (const RpcError& e) {
        EXPECT_EQ(e.code, -32602);
        EXPECT_NE(std::string(e.what()).find("'run'"), std::string::npos);
    }
    try {
        CheckParams(spec, J(R"({"run": 3, "follow": "yes"})"));
        FAIL();
    } catch (const RpcError& e) {
        EXPECT_NE(std::string(e.what()).find("'follow' must be a boolean"), std::string::npos);
    }
}

}  // namespace
}  // namespace ralph
