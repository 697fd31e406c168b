#include "bench/floor_client.h"

#include "bench/process.h"
#include "common/json_util.h"
#include "daemon/notifier.h"
#include "daemon/opencode_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <ctime>

namespace ralph::bench {

namespace asio = boost::asio;
namespace json = boost::json;
namespace http = boost::beast::http;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr auto kTimeout = std::chrono::seconds(30);

double MsSince(SteadyClock::time_point t) { return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count(); }

// The same bodies as ralph's (opencode_api::SessionBody and PromptBody), built outside the
// coroutine (GCC 12 and braced initialisers in coroutines).
std::string SessionBody(const std::string& title) { return json::serialize(opencode_api::SessionBody(title)); }
std::string PromptBody(const std::string& text) { return json::serialize(opencode_api::PromptBody(text, "", "")); }

/// What ralph reads from the messages: the last assistant message, its error and completion.
bool CompletedWithoutError(const json::value& all)
{
    const json::value* last = nullptr;
    if (!all.is_array()) return false;
    for (const json::value& m : all.as_array()) {
        const json::value* info = At(m, "info");
        if (!info || Str(At(*info, "role")) != "assistant") continue;
        if (auto* err = At(*info, "error"); err && !err->is_null()) return false;
        last = &m;
    }
    return last && At(*last, "info", "time", "completed");
}

struct State {
    explicit State(asio::any_io_executor ex) : changed(ex) {}
    bool connected{false};
    bool stream_ended{false};
    std::string waiting_for;  ///< the session whose idle event we wait for
    bool idle{false};
    Notifier changed;
};

asio::awaitable<void> Iterate(const FloorOptions& o, State& state, FloorResult& result)
{
    const std::string dir_query = "?directory=" + UrlEncode(o.directory);
    auto wall_start = SteadyClock::now();
    for (int n = 1; n <= o.iterations; ++n) {
        FloorIteration it;
        it.started_unix_ms = UnixMillis();
        auto t0 = SteadyClock::now();
        it.start_s = std::chrono::duration<double>(t0.time_since_epoch()).count();

        HttpResult created = co_await HttpCall(o.server, http::verb::post, "/session" + dir_query,
                                               SessionBody(o.title + " #" + std::to_string(n)), kTimeout);
        std::string session_id = created.ok() ? Str(At(created.Json(), "id")) : "";
        if (session_id.empty()) {
            result.error = "POST /session: " + created.Describe();
            co_return;
        }
        it.create_ms = MsSince(t0);

        state.waiting_for = session_id;
        state.idle = false;
        auto t1 = SteadyClock::now();
        HttpResult prompted = co_await HttpCall(o.server, http::verb::post,
                                                "/session/" + session_id + "/prompt_async" + dir_query,
                                                PromptBody(o.prompt), kTimeout);
        if (!prompted.ok()) {
            result.error = "POST prompt_async: " + prompted.Describe();
            co_return;
        }
        it.prompt_ms = MsSince(t1);

        auto t2 = SteadyClock::now();
        auto deadline = t2 + std::chrono::minutes(2);
        while (!state.idle && !state.stream_ended && SteadyClock::now() < deadline) co_await state.changed.WaitUntil(deadline);
        if (!state.idle) {
            result.error = "session " + session_id + " never went idle";
            co_return;
        }
        it.idle_ms = MsSince(t2);

        auto t3 = SteadyClock::now();
        HttpResult messages = co_await HttpCall(o.server, http::verb::get, "/session/" + session_id + "/message" + dir_query,
                                                "", kTimeout);
        if (!messages.ok()) {
            result.error = "GET messages: " + messages.Describe();
            co_return;
        }
        it.ok = CompletedWithoutError(messages.Json());
        it.messages_ms = MsSince(t3);
        it.total_ms = MsSince(t0);
        result.iterations.push_back(it);
    }
    result.wall_ms = MsSince(wall_start);
}

}  // namespace

FloorResult RunFloor(const FloorOptions& o)
{
    asio::io_context io;
    FloorResult result;
    State state(io.get_executor());
    auto stream = std::make_shared<EventStream>(io.get_executor());

    // One /global/event subscription for the whole run, as ralph's EventHub keeps one per server.
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            co_await stream->Run(
                o.server, "/global/event", std::chrono::seconds(35),
                [&] {
                    state.connected = true;
                    state.changed.Notify();
                },
                // By default every event is parsed: the floor does no more than it must, but no less.
                o.parse_only_idle ? EventTypeFilter([](std::string_view type) { return type == "session.idle"; })
                                  : EventTypeFilter(nullptr),
                [&](const json::value& event) {
                    const json::value* payload = At(event, "payload");
                    if (!payload) return;
                    if (Str(At(*payload, "type")) != "session.idle") return;
                    if (Str(At(*payload, "properties", "sessionID")) != state.waiting_for) return;
                    state.idle = true;
                    state.changed.Notify();
                });
            state.stream_ended = true;
            state.changed.Notify();
        },
        asio::detached);

    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto deadline = SteadyClock::now() + std::chrono::seconds(10);
            while (!state.connected && !state.stream_ended && SteadyClock::now() < deadline)
                co_await state.changed.WaitUntil(deadline);
            if (!state.connected) result.error = "could not open /global/event";
            else co_await Iterate(o, state, result);
            stream->Close();
        },
        asio::detached);
    timespec cpu0{}, cpu1{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
    io.run();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
    result.cpu_ms = static_cast<double>(cpu1.tv_sec - cpu0.tv_sec) * 1e3 + static_cast<double>(cpu1.tv_nsec - cpu0.tv_nsec) / 1e6;
    return result;
}

}  // namespace ralph::bench
