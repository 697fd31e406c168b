// The pure logic behind issue 11: UTF-8 repair of reply lines, control characters made visible,
// NUL bytes refused by the parameter spec, and response ids echoed exactly as they were sent.
#include "common/errors.h"
#include "common/jsonrpc.h"
#include "common/text.h"
#include "proto/protocol.h"

#include <gtest/gtest.h>

namespace ralph {
namespace {

namespace json = boost::json;

TEST(UnitSecurityText, Utf8ValidationRejectsWhatJsonParsersReject)
{
    EXPECT_TRUE(IsValidUtf8("plain ascii"));
    EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
    EXPECT_FALSE(IsValidUtf8("bad\xFFname"));
    EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
    EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // a surrogate
    EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
    EXPECT_FALSE(IsValidUtf8("\xE2\x82"));          // truncated
    // ASCII is skipped eight bytes at a time: a bad or split sequence at any offset after a run
    // of ASCII, or crossing an eight-byte boundary, is still judged.
    for (std::size_t ascii = 0; ascii < 20; ++ascii) {
        const std::string pad(ascii, 'a');
        EXPECT_FALSE(IsValidUtf8(pad + "\xFF" + pad)) << ascii;
        EXPECT_FALSE(IsValidUtf8(pad + "\xE2\x82")) << ascii;
        EXPECT_FALSE(IsValidUtf8(pad + "\xE2\x82" + pad + "bcdefghi")) << ascii;
        EXPECT_TRUE(IsValidUtf8(pad + "\xE2\x82\xAC" + pad)) << ascii;
        EXPECT_TRUE(IsValidUtf8(pad + "\xF0\x9F\x98\x80" + pad + "bcdefghi")) << ascii;
    }
    // Whatever the input, the repaired text is valid and keeps the valid parts.
    EXPECT_EQ(ToValidUtf8("bad\xFFname"), "bad\xEF\xBF\xBDname");
    EXPECT_EQ(ToValidUtf8("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
    EXPECT_EQ(ToValidUtf8("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(UnitSecurityText, PrintableShowsControlCharactersAsLsDoes)
{
    EXPECT_EQ(Printable("fix-tests"), "fix-tests");
    EXPECT_EQ(Printable("evil\x1b[31mred"), "evil\\e[31mred");
    EXPECT_EQ(Printable("two\nlines\r\t"), "two\\nlines\\r\\t");
    EXPECT_EQ(Printable(std::string("nul\0x", 5)), "nul\\x00x");
    EXPECT_EQ(Printable("del\x7f"), "del\\x7f");
    EXPECT_EQ(Printable("c1\xC2\x9B"), "c1\\x9b");      // CSI as a C1 control
    EXPECT_EQ(Printable("bad\xFFname"), "bad\\xffname");
    EXPECT_EQ(Printable("back\\slash"), "back\\\\slash");  // so an escape cannot be forged
    EXPECT_EQ(Printable("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(UnitSecurityProtocol, NulInAnyStringParameterIsInvalidParams)
{
    MethodSpec spec{"run.start", "", {{"task", ParamType::String, true, "", ""},
                                      {"run", ParamType::StringOrInteger, false, "", ""}}, ""};
    EXPECT_NO_THROW(CheckParams(spec, json::parse(R"({"task": "/etc"})")));
    for (const char* params : {R"({"task": "/etc\u0000"})", R"({"task": "a\u0000/b"})",
                               R"({"task": "x", "run": "fix\u0000"})"}) {
        SCOPED_TRACE(params);
        try {
            CheckParams(spec, json::parse(params));
            FAIL() << "accepted a NUL byte";
        } catch (const RpcError& e) {
            EXPECT_EQ(e.code, kInvalidParams);
            EXPECT_NE(std::string(e.what()).find("NUL"), std::string::npos) << e.what();
        }
    }
}

TEST(UnitSecurityProtocol, BigNumericIdIsEchoedAsSent)
{
    const std::string line = R"({"jsonrpc":"2.0","method":"x","id":123456789012345678901234567890})";
    auto m = jsonrpc::Parse(line);
    ASSERT_EQ(m.items.size(), 1u);
    ASSERT_EQ(m.id_texts.size(), 1u);
    EXPECT_EQ(m.id_texts[0], "123456789012345678901234567890");
    auto& req = std::get<jsonrpc::Request>(m.items[0]);
    auto out = jsonrpc::Encode(false, {jsonrpc::MakeResult(req.id, 1)}, m.id_texts);
    ASSERT_TRUE(out);
    EXPECT_EQ(*out, "{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":123456789012345678901234567890}\n");
}

TEST(UnitSecurityProtocol, IdsInABatchKeepTheirOwnText)
{
    const std::string line =
        R"([{"jsonrpc":"2.0","method":"x","id":1.50},{"jsonrpc":"2.0","method":"x","params":{"id":2.5}},)"
        R"( {"method":"x","id":9e0},{"jsonrpc":"2.0","method":"x","id":"s"},)"
        R"( {"jsonrpc":"2.0","method":"x","id":{"nested":1e1}}, 7])";
    auto m = jsonrpc::Parse(line);
    ASSERT_EQ(m.items.size(), 6u);
    ASSERT_EQ(m.id_texts.size(), 6u);
    EXPECT_EQ(m.id_texts[0], "1.50");
    EXPECT_EQ(m.id_texts[1], "");  // a notification: "id" inside params is not its id
    EXPECT_EQ(m.id_texts[2], "9e0");
    EXPECT_EQ(m.id_texts[3], "");
    EXPECT_EQ(m.id_texts[4], "");
    EXPECT_EQ(m.id_texts[5], "");
    // The element without "jsonrpc" is answered with an error that still carries its id as sent.
    auto* error = std::get_if<json::object>(&m.items[2]);
    ASSERT_NE(error, nullptr);
    auto out = jsonrpc::Encode(true, {*error}, {m.id_texts[2]});
    ASSERT_TRUE(out);
    EXPECT_NE(out->find("\"id\":9e0}"), std::string::npos) << *out;
}

TEST(UnitSecurityProtocol, ReplyLinesAreAlwaysValidUtf8)
{
    json::object reply = jsonrpc::MakeResult(1, json::object{{"task_dir", "/p/tasks/bad\xFFname"}});
    auto out = jsonrpc::Encode(false, {reply});
    ASSERT_TRUE(out);
    EXPECT_TRUE(IsValidUtf8(*out)) << *out;
    boost::system::error_code ec;
    json::value v = json::parse(*out, ec);  // strict: refuses invalid UTF-8
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(v.at("result").at("task_dir"), "/p/tasks/bad\xEF\xBF\xBDname");
}

}  // namespace
}  // namespace ralph
