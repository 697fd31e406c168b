// Fuzz target: the request path, from bytes on the socket to the reply line, against a real Daemon.
#include "tests/fuzz/fuzz_targets.h"

#include "common/json_util.h"
#include "common/jsonrpc.h"
#include "common/line_framer.h"
#include "common/text.h"
#include "daemon/daemon.h"
#include "daemon/rpc_table.h"

#include <boost/asio/co_spawn.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <unistd.h>

namespace ralph::fuzz {

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

/// The project the seed inputs name as `cwd`: fixed, so the corpus can refer to it.
constexpr const char* kProject = "/tmp/ralph-fuzz-project";

void Write(const std::string& path, const std::string& text)
{
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::trunc) << text;
}

/// One daemon for the whole fuzzing session, opened but not serving: each input is dispatched
/// by driving its io_context until the reply is ready. Never destroyed (reachable, so no leak
/// report); its scratch directory is removed at exit.
struct World {
    World()
    {
        dir = ScratchDir();
        // A git project with a task of each kind; written each time (other fuzzers may share it).
        fs::create_directories(std::string(kProject) + "/.git");
        Write(std::string(kProject) + "/tasks/hello/prompt.md", "Say {TASK_NAME} {ITERATION}/{MAX_ITERATIONS}\n");
        Write(std::string(kProject) + "/tasks/stories/prd.json",
              R"({"branchName":"b","userStories":[{"id":"US-1","passes":false}]})");
        Write(std::string(kProject) + "/tasks/done/prd.json", R"({"userStories":[{"id":"US-1","passes":true}]})");
        Write(std::string(kProject) + "/tasks/broken/prd.json", "{\"userStories\": [1,,]}");
        Write(std::string(kProject) + "/tasks/ini/prompt.md", "x\n");
        Write(std::string(kProject) + "/tasks/ini/ralph.ini", "[run]\nmax_iterations = 2\nmodel = a/b\n");
        // Names and contents that are not UTF-8 (issue 11): a task named with byte 0xff, one
        // reached through a link to such a directory, and a binary ralph.ini.
        Write(std::string(kProject) + "/tasks/bad\xff" "name/prompt.md", "x\n");
        Write(dir + "/real\xfe" "dir/prompt.md", "x\n");
        fs::remove(std::string(kProject) + "/tasks/link");
        fs::create_directory_symlink(dir + "/real\xfe" "dir", std::string(kProject) + "/tasks/link");
        Write(std::string(kProject) + "/tasks/binary/prompt.md", "x\n");
        Write(std::string(kProject) + "/tasks/binary/ralph.ini", "\xff\xfe[run]\nmodel = \xff\x01/\xc0\n");

        DaemonOptions options;
        options.socket_path = dir + "/run/ralphd.sock";
        options.state_dir = dir + "/state";
        options.config_path = dir + "/ralphd.conf";
        // No opencode: methods that need the server fail at once (SERVER_UNAVAILABLE, runs failed).
        options.overrides["server.opencode"] = dir + "/no-such-opencode";
        options.overrides["server.port_range"] = "1-1";
        options.overrides["server.port"] = "1";
        daemon = new Daemon(options);
        if (daemon->Open() != 0) {
            std::fprintf(stderr, "fuzz_request: the daemon did not open in %s\n", dir.c_str());
            std::abort();
        }
    }
    std::string dir;
    Daemon* daemon{nullptr};
};

World& TheWorld()
{
    static World* world = new World;
    return *world;
}

/// Drives the daemon's io_context until the reply to one line is ready.
std::optional<std::string> Dispatch(World& w, const std::string& line)
{
    asio::io_context& io = w.daemon->io();
    CallContext ctx{*w.daemon, [](json::object) -> asio::awaitable<void> { co_return; }, {}};
    std::optional<std::string> reply;
    std::exception_ptr error;
    bool done = false;
    asio::co_spawn(io, HandleLine(w.daemon->table(), ctx, line),
                   [&](std::exception_ptr e, std::optional<std::string> r) {
                       error = e;
                       reply = std::move(r);
                       done = true;
                   });
    io.restart();
    while (!done) {
        if (io.run_one() == 0) {
            std::fprintf(stderr, "fuzz_request: the request never completed: %s\n", line.c_str());
            std::abort();
        }
    }
    io.poll();  // let what the request set off (a run failing at once) move on
    if (error) std::rethrow_exception(error);
    // daemon.shutdown's after_reply is deliberately not called: the daemon serves the next input.
    return reply;
}

/// Every reply is one JSON-RPC 2.0 response (or a batch of them) on one line, and never an
/// internal error: a bad request is the caller's error (-32600, -32602, ...), not ours.
void CheckReply(const std::string& line, const std::string& reply)
{
    auto fail = [&](const std::string& why) {
        std::fprintf(stderr, "fuzz_request: %s\nrequest: %s\nreply: %s\n", why.c_str(), line.c_str(), reply.c_str());
        std::abort();
    };
    if (reply.empty() || reply.back() != '\n' || reply.find('\n') != reply.size() - 1) fail("reply is not one line");
    if (!IsValidUtf8(reply)) fail("reply is not UTF-8");
    boost::system::error_code ec;
    json::value v = json::parse(reply, ec);
    if (ec) fail("reply is not JSON");
    std::vector<const json::value*> responses;
    if (v.is_array()) {
        if (v.as_array().empty()) fail("empty batch reply");
        for (const auto& r : v.as_array()) responses.push_back(&r);
    } else {
        responses.push_back(&v);
    }
    static const std::set<int64_t> codes = {-32700, -32600, -32601, -32602, -32001, -32004, -32005, -32006, -32010, -32011};
    for (const json::value* r : responses) {
        if (!r->is_object()) fail("a response is not an object");
        const json::object& o = r->as_object();
        if (o.if_contains("jsonrpc") == nullptr || o.at("jsonrpc") != "2.0") fail("no \"jsonrpc\": \"2.0\"");
        if (!o.contains("id")) fail("no id");
        if (o.contains("result") == o.contains("error")) fail("not exactly one of result and error");
        if (auto* e = o.if_contains("error")) {
            const json::value* code = e->is_object() ? e->as_object().if_contains("code") : nullptr;
            if (!code || !code->is_int64() || !codes.count(code->as_int64())) fail("unexpected error code");
            if (!e->as_object().contains("message")) fail("error without a message");
        }
    }
}

/// The error code of a single reply, or 0 when it is a result.
int64_t ReplyCode(const std::string& reply)
{
    json::value v = json::parse(reply);
    const json::value* code = v.is_object() ? At(v, "error", "code") : nullptr;
    return code && code->is_int64() ? code->as_int64() : 0;
}

/// The line again with every string parameter, one at a time, given a NUL byte and a byte that
/// is not UTF-8 (issue 11): a NUL is refused by the parameter spec (never a result), and raw
/// invalid UTF-8 is no JSON (a parse error).
void DispatchWithBadStrings(World& w, const std::string& line)
{
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) return;
    json::value* params = v.as_object().if_contains("params");
    if (!params || !params->is_object()) return;
    std::vector<std::string> keys;
    for (const auto& [key, value] : params->as_object())
        if (value.is_string()) keys.emplace_back(key);
    for (const std::string& key : keys) {
        json::value copy = v;
        json::string& text = copy.at("params").at(key).as_string();
        std::string original(text);
        text = original.substr(0, original.size() / 2) + std::string(1, '\0') + original.substr(original.size() / 2);
        std::string with_nul = json::serialize(copy);
        if (auto reply = Dispatch(w, with_nul)) {
            CheckReply(with_nul, *reply);
            if (ReplyCode(*reply) == 0) {
                std::fprintf(stderr, "fuzz_request: a NUL byte in '%s' got a result\nrequest: %s\nreply: %s\n",
                             key.c_str(), with_nul.c_str(), reply->c_str());
                std::abort();
            }
        }
        text = original + "\x01";  // serialised as \u0001; replaced below by a raw 0xff
        std::string with_ff = json::serialize(copy);
        auto at = with_ff.find("\\u0001");
        if (at == std::string::npos) continue;
        with_ff.replace(at, 6, "\xff");
        if (auto reply = Dispatch(w, with_ff)) {
            CheckReply(with_ff, *reply);
            if (ReplyCode(*reply) != -32700) {
                std::fprintf(stderr, "fuzz_request: raw 0xff in '%s' was not a parse error\nreply: %s\n", key.c_str(),
                             reply->c_str());
                std::abort();
            }
        }
    }
}

}  // namespace

int Request(const uint8_t* data, std::size_t size)
{
    World& w = TheWorld();
    // As the connection reads them: in pieces of varying size, lines over the limit end it.
    LineFramer framer(8192);
    std::size_t pos = 0, step = 1;
    while (pos < size) {
        std::size_t n = std::min(size - pos, step);
        step = step % 61 + 7;
        if (!framer.Append(std::string_view(reinterpret_cast<const char*>(data) + pos, n))) return 0;
        pos += n;
        while (auto line = framer.Next()) {
            if (!line->empty() && line->back() == '\r') line->pop_back();
            if (line->find_first_not_of(" \t") == std::string::npos) continue;
            if (auto reply = Dispatch(w, *line)) CheckReply(*line, *reply);
            DispatchWithBadStrings(w, *line);
        }
    }
    return 0;
}

}  // namespace ralph::fuzz
