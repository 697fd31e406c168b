// Fuzz target: what opencode sends back. The bytes are an SSE stream (/global/event); each event's
// data is parsed, dispatched by the EventHub, and read the way the loop engine reads events and
// the session's messages.
#include "tests/fuzz/fuzz_targets.h"

#include "common/json_util.h"
#include "daemon/config.h"
#include "daemon/event_hub.h"
#include "daemon/loop_engine.h"
#include "daemon/opencode_http.h"
#include "daemon/server_supervisor.h"
#include "daemon/store.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

namespace ralph::fuzz {

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

struct World {
    World()
    {
        dir = ScratchDir();
        store = new RunStore(dir + "/ralph.db");
        ServerSettings settings;
        settings.opencode = dir + "/no-such-opencode";
        supervisor = new ServerSupervisor(io, settings, *store, dir);
        hub = new EventHub(io, *supervisor);
        for (const char* id : {"ses_a", "ses_b", ""}) {
            auto* w = new EventHub::Watch(io.get_executor());
            w->session_id = id;
            hub->Add(w);
            watches.push_back(w);
        }
    }
    std::string dir;
    boost::asio::io_context io;
    RunStore* store;
    ServerSupervisor* supervisor;
    EventHub* hub;
    std::vector<EventHub::Watch*> watches;
};

World& TheWorld()
{
    static World* world = new World;
    return *world;
}

std::vector<std::string> Parse(std::string_view bytes, std::size_t chunk)
{
    std::vector<std::string> events;
    SseParser parser;
    for (std::size_t pos = 0; pos < bytes.size(); pos += chunk)
        parser.Feed(bytes.substr(pos, chunk), [&](std::string_view data) { events.emplace_back(data); });
    return events;
}

/// What LoopEngine::Iterate reads from an event of its session.
void ReadEvent(const json::object& event)
{
    std::string type = Str(event.if_contains("type"));
    json::value props = event.contains("properties") ? event.at("properties") : json::value();
    volatile std::size_t sink = type.size();
    sink = sink + Str(At(props, "status", "type")).size() + Str(At(props, "status", "message")).size();
    sink = sink + static_cast<std::size_t>(Int(At(props, "status", "attempt")));
    if (auto* err = At(props, "error")) sink = sink + Str(At(*err, "name")).size() + Str(At(*err, "data", "message")).size();
    sink = sink + Str(At(props, "id")).size() + Str(At(props, "permission")).size();
    sink = sink + Str(At(props, "info", "role")).size() + Str(At(props, "info", "id")).size();
    if (const json::value* part = At(props, "part")) {
        sink = sink + Str(At(*part, "messageID")).size() + Str(At(*part, "type")).size() + Str(At(*part, "id")).size();
        sink = sink + Str(At(*part, "state", "status")).size() + Str(At(*part, "tool")).size();
        sink = sink + Str(At(*part, "state", "title")).size() + Str(At(*part, "state", "error")).size();
        sink = sink + (At(*part, "time", "end") != nullptr) + (At(*part, "synthetic") != nullptr);
        sink = sink + Str(At(*part, "text")).size();
    }
}

/// What it reads from GET /session/{id}/message: tokens, cost, errors, the promise in text parts.
void ReadMessages(const json::value& all)
{
    if (!all.is_array()) return;
    volatile int64_t tokens = 0;
    volatile double cost = 0;
    for (const json::value& m : all.as_array()) {
        const json::value* info = At(m, "info");
        if (!info || Str(At(*info, "role")) != "assistant") continue;
        tokens = tokens + Int(At(*info, "tokens", "input")) / 2 + Int(At(*info, "tokens", "output")) / 2;
        cost = cost + Real(At(*info, "cost"));
        (void)At(*info, "time", "completed");
        if (auto* parts = At(m, "parts"); parts && parts->is_array())
            for (const json::value& part : parts->as_array())
                if (Str(At(part, "type")) == "text") (void)ContainsPromise(Str(At(part, "text")), "COMPLETE");
    }
}

}  // namespace

int Events(const uint8_t* data, std::size_t size)
{
    World& w = TheWorld();
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    // However the stream is split across reads, the same events come out.
    std::vector<std::string> whole = Parse(bytes, bytes.size() + 1);
    for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{64} + size % 7}) {
        if (Parse(bytes, chunk) != whole) {
            std::fprintf(stderr, "fuzz_events: splitting the stream into %zu-byte reads changed the events\n", chunk);
            std::abort();
        }
    }
    for (const std::string& event_data : whole) {
        boost::system::error_code ec;
        json::value v = json::parse(event_data, ec);
        if (ec) continue;  // EventStream skips what is not JSON
        w.hub->Dispatch(v);
        ReadMessages(v);
        HttpResult http;
        http.status = 200;
        http.body = event_data;
        ReadMessages(http.Json());
        (void)http.Describe();
    }
    for (EventHub::Watch* watch : w.watches) {
        while (!watch->events.empty()) {
            ReadEvent(watch->events.front());
            watch->events.pop_front();
        }
    }
    w.io.poll();
    return 0;
}

}  // namespace ralph::fuzz
