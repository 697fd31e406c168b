// ralph-fake-model: a scripted OpenAI-compatible chat-completions server that stands in for an LLM
// in ralph's tests, demo and benchmarks. What it answers is chosen by directives in the last user
// message and by an optional script file; README.md is the reference for both.
// Single-threaded: one io_context, one coroutine per connection, so the state needs no locking.

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;
using net::awaitable;
using net::use_awaitable;

namespace {

// ---- Directives ---------------------------------------------------------------------------------

struct FileWrite {
    std::string path;
    std::optional<std::string> content;
    bool outside = false;  // WRITE_OUTSIDE: a relative path resolves against the parent of the working dir
};

struct Directives {
    bool textonly = false, question = false, fail401 = false, fail500 = false, promise = false;
    bool fail429 = false;
    long fail429_until = 0;  // FAIL429:N: main requests 1..N of the key get 429; 0: every one
    std::string promise_word = "COMPLETE";
    std::vector<FileWrite> writes;
    std::vector<std::string> bash;
    long slow_ms = 0;
    long complete_after = 0;
    std::string key;
    bool wants_tools() const { return !writes.empty() || !bash.empty() || question; }
};

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)); }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// Reads a double-quoted string with \n \t \" \\ escapes; text[pos] is the opening quote.
std::string read_quoted(std::string_view text, size_t& pos) {
    std::string out;
    ++pos;
    while (pos < text.size() && text[pos] != '"') {
        char c = text[pos++];
        if (c == '\\' && pos < text.size()) {
            char e = text[pos++];
            out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
        } else {
            out += c;
        }
    }
    if (pos < text.size()) ++pos;
    return out;
}

// Reads an argument: a quoted string, or everything up to whitespace or one of `stops`.
std::string read_arg(std::string_view text, size_t& pos, std::string_view stops = {}) {
    if (pos < text.size() && text[pos] == '"') return read_quoted(text, pos);
    size_t start = pos;
    while (pos < text.size() && !is_space(text[pos]) && stops.find(text[pos]) == std::string_view::npos) ++pos;
    return std::string(text.substr(start, pos - start));
}

long to_long(const std::string& s) {
    try {
        return std::max(0L, std::stol(s));
    } catch (...) {
        return 0;
    }
}

// Adds the directives found in `text` to `d`. A directive must start a word (start of text, or after a
// character that is not a letter, digit or '_'); its argument is consumed and never re-scanned.
void parse_directives(std::string_view text, Directives& d) {
    auto starts = [&](size_t pos, std::string_view name) { return text.substr(pos, name.size()) == name; };
    auto flag = [&](size_t pos, std::string_view name) {  // NAME not followed by a word character or ':'
        size_t end = pos + name.size();
        return starts(pos, name) && (end == text.size() || (!is_word_char(text[end]) && text[end] != ':'));
    };
    size_t pos = 0;
    while (pos < text.size()) {
        if (pos > 0 && is_word_char(text[pos - 1])) {
            ++pos;
        } else if (starts(pos, "WRITE_OUTSIDE:") || starts(pos, "WRITE:")) {
            bool outside = text[pos + 5] == '_';
            pos += outside ? 14 : 6;
            FileWrite w{read_arg(text, pos, "="), std::nullopt, outside};
            if (pos < text.size() && text[pos] == '=') {
                ++pos;
                w.content = read_arg(text, pos);
            }
            if (!w.path.empty()) d.writes.push_back(std::move(w));
        } else if (starts(pos, "BASH:")) {
            pos += 5;
            if (pos < text.size() && text[pos] == '"') {
                d.bash.push_back(read_quoted(text, pos));
            } else {  // the rest of the line
                size_t eol = std::min(text.find('\n', pos), text.size());
                if (auto cmd = trim(text.substr(pos, eol - pos)); !cmd.empty()) d.bash.emplace_back(cmd);
                pos = eol;
            }
        } else if (starts(pos, "PROMISE:")) {
            pos += 8;
            d.promise = true;
            if (auto word = read_arg(text, pos); !word.empty()) d.promise_word = word;
        } else if (flag(pos, "PROMISE")) {
            d.promise = true, pos += 7;
        } else if (flag(pos, "TEXTONLY")) {
            d.textonly = true, pos += 8;
        } else if (flag(pos, "QUESTION")) {
            d.question = true, pos += 8;
        } else if (flag(pos, "FAIL401")) {
            d.fail401 = true, pos += 7;
        } else if (flag(pos, "FAIL500")) {
            d.fail500 = true, pos += 7;
        } else if (starts(pos, "FAIL429:")) {
            pos += 8;
            d.fail429 = true, d.fail429_until = to_long(read_arg(text, pos));
        } else if (flag(pos, "FAIL429")) {
            d.fail429 = true, pos += 7;
        } else if (starts(pos, "SLOW:")) {
            pos += 5;
            d.slow_ms = to_long(read_arg(text, pos));
        } else if (starts(pos, "COMPLETE_AFTER:")) {
            pos += 15;
            d.complete_after = to_long(read_arg(text, pos));
        } else if (starts(pos, "KEY:")) {
            pos += 4;
            d.key = read_arg(text, pos);
        } else {
            ++pos;
        }
    }
}

// ---- What opencode sent -------------------------------------------------------------------------

struct ChatRequest {
    std::string model;
    bool stream = false;
    std::vector<std::string> tool_names;  // empty: no tools (opencode's title request)
    std::string last_role, last_user_text, tool_result, workdir;
};

// Message content is a string or an array of parts; the text parts are joined by newlines.
std::string content_text(const json::value* content) {
    if (!content) return {};
    if (content->is_string()) return std::string(content->get_string());
    std::string out;
    if (content->is_array())
        for (const auto& part : content->get_array())
            if (const auto* t = part.is_object() ? part.as_object().if_contains("text") : nullptr; t && t->is_string()) {
                if (!out.empty()) out += '\n';
                out += t->get_string();
            }
    return out;
}

std::string string_field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

ChatRequest read_chat_request(const json::object& body) {
    ChatRequest r;
    r.model = string_field(body, "model");
    if (const auto* s = body.if_contains("stream"); s && s->is_bool()) r.stream = s->get_bool();
    if (const auto* tools = body.if_contains("tools"); tools && tools->is_array())
        for (const auto& t : tools->get_array())
            if (const auto* fn = t.is_object() ? t.as_object().if_contains("function") : nullptr; fn && fn->is_object())
                r.tool_names.push_back(string_field(fn->as_object(), "name"));
    const auto* messages = body.if_contains("messages");
    if (!messages || !messages->is_array()) return r;
    for (const auto& m : messages->get_array()) {
        if (!m.is_object()) continue;
        const auto& msg = m.as_object();
        r.last_role = string_field(msg, "role");
        std::string text = content_text(msg.if_contains("content"));
        if (r.last_role == "user") r.last_user_text = text;
        if (r.last_role == "system" && r.workdir.empty()) {
            // opencode 1.18.33's system prompt has the line "  Working directory: /abs/path" inside <env>.
            static constexpr std::string_view marker = "Working directory: ";
            if (auto at = text.find(marker); at != std::string::npos) {
                at += marker.size();
                r.workdir = trim(std::string_view(text).substr(at, text.find('\n', at) - at));
            }
        }
        r.tool_result = r.last_role == "tool" ? text : std::string();
    }
    return r;
}

// ---- What to answer -----------------------------------------------------------------------------

struct ToolCall {
    std::string name;
    json::object args;
};

struct Answer {
    std::string behaviour;
    http::status status = http::status::ok;
    std::string text;
    std::vector<ToolCall> calls;
    long slow_ms = 0;
    std::string key;
    long n = 0;  // the main-request number for `key` this answer belongs to
};

struct State {
    std::vector<std::string> script;   // directive lines; main request N uses line N, the last repeats
    std::map<std::string, long> main_requests;  // per key
    std::set<std::string> models{"fake-model"};
    std::ofstream log, dump;
    long next_id = 0;
};

std::string join_path(const std::string& dir, const std::string& path) {
    if (path.starts_with('/') || dir.empty()) return path;
    return dir.ends_with('/') ? dir + path : dir + "/" + path;
}

std::string parent_dir(const std::string& dir) {
    auto slash = dir.find_last_of('/', dir.size() > 1 ? dir.size() - 2 : 0);
    return slash == std::string::npos || slash == 0 ? std::string("/") : dir.substr(0, slash);
}

Answer decide(const ChatRequest& rq, State& st) {
    Answer a;
    if (rq.tool_names.empty()) {
        a.behaviour = "title", a.text = "Fake title";
        return a;
    }
    Directives d;
    parse_directives(rq.last_user_text, d);
    a.key = d.key.empty() ? rq.workdir : d.key;
    bool main_request = rq.last_role != "tool";
    long& count = st.main_requests[a.key];
    if (main_request) ++count;
    a.n = std::max(count, 1L);
    if (!st.script.empty()) {  // the script line first, so that the prompt's KEY/SLOW/... override it
        Directives merged;
        parse_directives(st.script[std::min<size_t>(a.n, st.script.size()) - 1], merged);
        parse_directives(rq.last_user_text, merged);
        d = std::move(merged);
    }
    a.slow_ms = d.slow_ms;
    bool promise_due = d.complete_after > 0 ? a.n >= d.complete_after : d.promise;
    std::string promise = " <promise>" + d.promise_word + "</promise>";
    if (d.fail401) {
        a.behaviour = "fail401", a.status = http::status::unauthorized;
    } else if (d.fail500) {
        a.behaviour = "fail500", a.status = http::status::internal_server_error;
    } else if (d.fail429 && (d.fail429_until == 0 || a.n <= d.fail429_until)) {
        a.behaviour = "fail429", a.status = http::status::too_many_requests;
    } else if (!main_request) {
        a.behaviour = promise_due ? "done-promise" : "done";
        a.text = promise_due ? "Done." + promise : "Done.";
    } else if (d.textonly) {
        a.behaviour = "textonly", a.text = "Working on it.";
    } else if (d.wants_tools()) {
        a.behaviour = "tool-calls";
        for (const auto& w : d.writes) {
            std::string path = w.outside ? join_path(parent_dir(rq.workdir), w.path) : join_path(rq.workdir, w.path);
            a.calls.push_back({"write", {{"filePath", path}, {"content", w.content.value_or("written by ralph-fake-model\n")}}});
        }
        for (const auto& cmd : d.bash) a.calls.push_back({"bash", {{"command", cmd}, {"description", "scripted"}}});
        if (d.question) {
            json::object q{{"question", "Proceed with the change?"},
                           {"header", "Confirm"},
                           {"options", json::array{json::object{{"label", "Yes"}, {"description", "go ahead"}},
                                                   json::object{{"label", "No"}, {"description", "stop"}}}}};
            a.calls.push_back({"question", {{"questions", json::array{q}}}});
        }
        std::vector<std::string> names;
        for (const auto& c : a.calls)
            if (std::find(names.begin(), names.end(), c.name) == names.end()) names.push_back(c.name);
        a.text = "I'll use the";
        for (size_t i = 0; i < names.size(); ++i) a.text += (i == 0 ? " " : i + 1 == names.size() ? " and " : ", ") + names[i];
        a.text += names.size() == 1 ? " tool." : " tools.";
    } else {
        a.behaviour = promise_due ? "promise" : "text";
        a.text = promise_due ? "Working on it." + promise : "Working on it.";
    }
    return a;
}

json::object usage(long prompt, long completion) {
    return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

// Rough token counts, about 4 bytes a token, so that they grow with the conversation like a real model's.
long completion_tokens(const Answer& a) {
    size_t bytes = a.text.size();
    for (const auto& c : a.calls) bytes += json::serialize(c.args).size();
    return std::max<long>(1, static_cast<long>(bytes / 4));
}

long now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- Replies (plain functions: GCC 12 miscompiles braced JSON initialisers inside coroutines) ---

using Request = http::request<http::string_body>;

struct Reply {
    http::status status = http::status::ok;
    std::string body;                 // a JSON document, unless `events` is used
    std::vector<std::string> events;  // non-empty: an SSE stream; the delay comes after the first event
    long slow_ms = 0;
    long retry_after = 0;  // seconds; a Retry-After header when set
};

Reply json_reply(http::status status, const json::value& body) { return {status, json::serialize(body), {}, 0, 0}; }

Reply error_reply(http::status status, const std::string& message, std::string_view type) {
    return json_reply(status, {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}});
}

// OpenAI's chat.completion.chunk events; the last chunk carries finish_reason and usage.
std::vector<std::string> stream_events(const ChatRequest& rq, const Answer& a, const std::string& id, long prompt_tok) {
    long created = now_seconds();
    std::vector<std::string> events;
    auto event = [&](json::object delta, json::value finish, std::optional<json::object> use = std::nullopt) {
        json::object chunk{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", rq.model}};
        chunk["choices"] = json::array{json::object{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish}}};
        if (use) chunk["usage"] = std::move(*use);
        events.push_back("data: " + json::serialize(chunk) + "\n\n");
    };
    event({{"role", "assistant"}, {"content", ""}}, nullptr);
    for (size_t at = 0; at < a.text.size();) {  // one word (with its trailing space) per chunk
        size_t end = a.text.find(' ', at);
        end = end == std::string::npos ? a.text.size() : end + 1;
        event({{"content", a.text.substr(at, end - at)}}, nullptr);
        at = end;
    }
    for (size_t i = 0; i < a.calls.size(); ++i) {  // the name first, then the arguments, like OpenAI
        json::object head{{"index", i}, {"id", id + "_call_" + std::to_string(i)}, {"type", "function"},
                          {"function", {{"name", a.calls[i].name}, {"arguments", ""}}}};
        event({{"tool_calls", json::array{head}}}, nullptr);
        json::object args{{"index", i}, {"function", {{"arguments", json::serialize(a.calls[i].args)}}}};
        event({{"tool_calls", json::array{args}}}, nullptr);
    }
    event({}, a.calls.empty() ? "stop" : "tool_calls", usage(prompt_tok, completion_tokens(a)));
    events.push_back("data: [DONE]\n\n");
    return events;
}

json::object completion_json(const ChatRequest& rq, const Answer& a, const std::string& id, long prompt_tok) {
    json::object message{{"role", "assistant"}, {"content", a.text}};
    if (!a.calls.empty()) {
        json::array calls;
        for (size_t i = 0; i < a.calls.size(); ++i)
            calls.push_back(json::object{{"id", id + "_call_" + std::to_string(i)}, {"type", "function"},
                                         {"function", {{"name", a.calls[i].name},
                                                       {"arguments", json::serialize(a.calls[i].args)}}}});
        message["tool_calls"] = std::move(calls);
    }
    return {{"id", id},
            {"object", "chat.completion"},
            {"created", now_seconds()},
            {"model", rq.model},
            {"choices", json::array{json::object{{"index", 0}, {"message", std::move(message)},
                                                 {"finish_reason", a.calls.empty() ? "stop" : "tool_calls"}}}},
            {"usage", usage(prompt_tok, completion_tokens(a))}};
}

void log_line(State& st, json::object entry) {
    if (!st.log.is_open()) return;
    entry["time_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
    st.log << json::serialize(entry) << '\n' << std::flush;
}

Reply chat_reply(const Request& req, State& st) {
    json::error_code ec;
    json::value body = json::parse(req.body(), ec);
    if (ec || !body.is_object()) {
        log_line(st, {{"method", "POST"}, {"path", req.target()}, {"behaviour", "bad-request"}});
        return error_reply(http::status::bad_request, "request body is not a JSON object", "invalid_request_error");
    }
    if (st.dump.is_open()) st.dump << req.body() << '\n' << std::flush;
    ChatRequest rq = read_chat_request(body.as_object());
    if (rq.model.empty()) rq.model = "fake-model";
    st.models.insert(rq.model);
    Answer a = decide(rq, st);
    std::string id = "chatcmpl-" + std::to_string(++st.next_id);
    long prompt_tok = std::max<long>(1, static_cast<long>(req.body().size() / 4));
    bool failed = a.status != http::status::ok;

    json::array tool_names, calls;
    for (const auto& t : rq.tool_names) tool_names.emplace_back(t);
    for (const auto& c : a.calls) calls.emplace_back(c.name);
    json::object entry{{"method", "POST"}, {"path", req.target()}, {"model", rq.model}, {"stream", rq.stream},
                       {"tools", !rq.tool_names.empty()}, {"tool_names", std::move(tool_names)},
                       {"last_role", rq.last_role}, {"behaviour", a.behaviour}, {"key", a.key}, {"n", a.n},
                       {"workdir", rq.workdir}, {"status", static_cast<int>(a.status)},
                       {"tool_calls", std::move(calls)}, {"prompt", rq.last_user_text.substr(0, 500)}};
    if (rq.last_role == "tool") entry["tool_result"] = rq.tool_result.substr(0, 500);
    if (!failed) {
        entry["prompt_tokens"] = prompt_tok;
        entry["completion_tokens"] = completion_tokens(a);
    }
    log_line(st, std::move(entry));

    Reply r;
    if (a.status == http::status::unauthorized) {
        r = json_reply(a.status, {{"error", {{"message", "Incorrect API key provided"}, {"type", "invalid_request_error"},
                                             {"param", nullptr}, {"code", "invalid_api_key"}}}});
    } else if (a.status == http::status::too_many_requests) {
        r = json_reply(a.status, {{"error", {{"message", "Rate limit reached for requests"}, {"type", "requests"},
                                             {"param", nullptr}, {"code", "rate_limit_exceeded"}}}});
        r.retry_after = 1;  // opencode honours it: its five retries take seconds, not a minute
    } else if (failed) {
        r = error_reply(a.status, "fake upstream exploded", "server_error");
    } else if (rq.stream) {
        r.events = stream_events(rq, a, id, prompt_tok);
    } else {
        r = json_reply(a.status, completion_json(rq, a, id, prompt_tok));
    }
    r.slow_ms = a.slow_ms;
    return r;
}

Reply route(const Request& req, State& st) {
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
    if (req.method() == http::verb::post && path == "/v1/chat/completions") return chat_reply(req, st);
    if (req.method() == http::verb::get && path == "/v1/models") {
        log_line(st, {{"method", "GET"}, {"path", target}, {"behaviour", "models"}});
        json::array data;
        for (const auto& m : st.models)
            data.push_back(json::object{{"id", m}, {"object", "model"}, {"created", 0}, {"owned_by", "ralph-fake-model"}});
        return json_reply(http::status::ok, {{"object", "list"}, {"data", std::move(data)}});
    }
    log_line(st, {{"method", req.method_string()}, {"path", target}, {"behaviour", "not-found"}});
    return error_reply(http::status::not_found, "no route for " + std::string(req.method_string()) + " " + std::string(path),
                       "not_found");
}

// ---- Connections --------------------------------------------------------------------------------

awaitable<void> sleep_ms(long ms) {
    net::steady_timer timer(co_await net::this_coro::executor, std::chrono::milliseconds(ms));
    co_await timer.async_wait(use_awaitable);
}

awaitable<void> send(tcp::socket& sock, const Request& req, const Reply& r) {
    if (r.events.empty()) {
        if (r.slow_ms > 0) co_await sleep_ms(r.slow_ms);
        http::response<http::string_body> res{r.status, req.version()};
        res.set(http::field::content_type, "application/json");
        if (r.retry_after > 0) res.set(http::field::retry_after, std::to_string(r.retry_after));
        res.keep_alive(req.keep_alive());
        res.body() = r.body;
        res.prepare_payload();
        co_await http::async_write(sock, res, use_awaitable);
        co_return;
    }
    http::response<http::empty_body> res{r.status, req.version()};
    res.set(http::field::content_type, "text/event-stream");
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(req.keep_alive());
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    co_await http::async_write_header(sock, sr, use_awaitable);
    for (size_t i = 0; i < r.events.size(); ++i) {
        co_await net::async_write(sock, http::make_chunk(net::buffer(r.events[i])), use_awaitable);
        if (i == 0 && r.slow_ms > 0) co_await sleep_ms(r.slow_ms);
    }
    co_await net::async_write(sock, http::make_chunk_last(), use_awaitable);
}

awaitable<void> serve_connection(tcp::socket sock, State& st) {
    beast::flat_buffer buffer;
    try {
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(256 * 1024 * 1024);
            co_await http::async_read(sock, buffer, parser, use_awaitable);
            Request req = parser.release();
            Reply reply = route(req, st);
            co_await send(sock, req, reply);
            if (!req.keep_alive()) break;
        }
    } catch (const boost::system::system_error& e) {
        // end_of_stream is a client closing an idle connection; anything else (a reset or broken pipe
        // while streaming) is a client that gave up, e.g. opencode aborting a session.
        if (e.code() != http::error::end_of_stream && e.code() != net::error::eof)
            std::cerr << "fake-model: connection closed: " << e.code().message() << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "fake-model: " << e.what() << std::endl;
    }
    boost::system::error_code ignored;
    sock.shutdown(tcp::socket::shutdown_send, ignored);
}

awaitable<void> accept_loop(tcp::acceptor& acceptor, State& st) {
    for (;;) {
        auto [ec, sock] = co_await acceptor.async_accept(net::as_tuple(use_awaitable));
        if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
        if (ec) {  // e.g. out of file descriptors: back off instead of spinning
            std::cerr << "fake-model: accept: " << ec.message() << std::endl;
            co_await sleep_ms(100);
            continue;
        }
        net::co_spawn(acceptor.get_executor(), serve_connection(std::move(sock), st), net::detached);
    }
}

int usage_error(const std::string& message) {
    if (!message.empty()) std::cerr << "ralph-fake-model: " << message << "\n";
    std::cerr << "usage: ralph-fake-model [--port N] [--host ADDR] [--script FILE] [--log FILE] [--dump FILE]\n"
                 "  --port N       port to listen on; 0 picks a free one (default 18181)\n"
                 "  --host ADDR    address to listen on (default 127.0.0.1)\n"
                 "  --script FILE  directive lines: main request N for a key uses line N, the last repeats\n"
                 "  --log FILE     append one JSON line per request\n"
                 "  --dump FILE    append each raw chat request body, one per line\n"
                 "Directives are described in tests/fake_model/README.md.\n";
    return message.empty() ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", script_path, log_path, dump_path;
    unsigned long port = 18181;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") return usage_error("");
        if (i + 1 >= argc) return usage_error("unknown option or missing value: " + arg);
        std::string value = argv[++i];
        if (arg == "--port") {
            try {
                port = std::stoul(value);
            } catch (...) {
                port = 65536;
            }
            if (port > 65535) return usage_error("bad port: " + value);
        } else if (arg == "--host") {
            host = value;
        } else if (arg == "--script") {
            script_path = value;
        } else if (arg == "--log") {
            log_path = value;
        } else if (arg == "--dump") {
            dump_path = value;
        } else {
            return usage_error("unknown option: " + arg);
        }
    }

    State st;
    if (!script_path.empty()) {
        std::ifstream in(script_path);
        if (!in) return usage_error("cannot read script " + script_path);
        for (std::string line; std::getline(in, line);)
            if (auto t = trim(line); !t.empty() && !t.starts_with('#')) st.script.emplace_back(t);
    }
    if (!log_path.empty()) {
        st.log.open(log_path, std::ios::app);
        if (!st.log) return usage_error("cannot open log " + log_path);
    }
    if (!dump_path.empty()) {
        st.dump.open(dump_path, std::ios::app);
        if (!st.dump) return usage_error("cannot open dump " + dump_path);
    }

    try {
        net::io_context ioc;
        tcp::endpoint endpoint{net::ip::make_address(host), static_cast<unsigned short>(port)};
        tcp::acceptor acceptor{ioc};
        acceptor.open(endpoint.protocol());
        acceptor.set_option(net::socket_base::reuse_address(true));
        acceptor.bind(endpoint);
        acceptor.listen();
        net::signal_set signals(ioc, SIGINT, SIGTERM);
        signals.async_wait([&](const boost::system::error_code&, int) { ioc.stop(); });
        net::co_spawn(ioc, accept_loop(acceptor, st), net::detached);
        std::cout << "fake-model listening on http://" << host << ":" << acceptor.local_endpoint().port() << std::endl;
        ioc.run();
    } catch (const std::exception& e) {
        std::cerr << "ralph-fake-model: cannot listen on " << host << ":" << port << ": " << e.what() << "\n";
        return 1;
    }
    return 0;
}
