// Fuzz target: what opencode sends back. The bytes are an SSE stream (/global/event); each event's
// data is parsed, dispatched by the EventHub, and fed to the iteration's logic (IterationMachine),
// which also reads the session's messages.
#include "tests/fuzz/fuzz_targets.h"

#include "common/json_util.h"
#include "daemon/config.h"
#include "daemon/event_hub.h"
#include "daemon/iteration.h"
#include "daemon/opencode_http.h"
#include "daemon/server_supervisor.h"
#include "daemon/store.h"

#include <cstdio>
#include <deque>
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

/// The iteration's logic (what LoopEngine::Iterate runs) over the events of one session, with
/// the clock moving and every check, then its end from a value read as the session's messages.
void Iterate(std::deque<json::object>& events, const json::value& messages, std::size_t seed)
{
    FakeClock clock;
    IterationMachine machine({std::chrono::minutes(30), std::chrono::seconds(5), "/tmp/project", "COMPLETE", {}, {}}, clock.Now());
    IterationMachine::Surroundings around;
    around.stop_now = seed % 5 == 1;
    auto perform = [&](const IterationActions& actions) {
        for (const IterationAction& a : actions) {
            if (a.kind == IterationAction::Kind::Abort) machine.AbortSent(clock.Now());
            volatile std::size_t sink = a.log_kind.size() + a.data.size() + a.request_id.size() + a.outcome.error.size();
            (void)sink;
        }
    };
    while (!events.empty()) {
        perform(machine.OnEvent(events.front(), clock.Now()));
        events.pop_front();
        if (!machine.idle()) perform(machine.Check(around, clock.Now()));
        auto until_wake = std::max<Clock::Duration>(machine.WakeAt(clock.Now()) - clock.Now(), Clock::Duration::zero());
        clock.Advance(std::min<Clock::Duration>(until_wake, std::chrono::seconds(seed % 7)));
    }
    if (seed % 3 == 0) perform(machine.ConcludeUnread("fuzz", seed % 2 == 0));
    else perform(machine.Conclude(messages));
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
    json::value last;  // the last event's JSON doubles as the session's messages
    for (const std::string& event_data : whole) {
        boost::system::error_code ec;
        json::value v = json::parse(event_data, ec);
        if (ec) continue;  // EventStream skips what is not JSON
        // As the stream does: an event whose type is read from its text, not one the loop reads, is
        // dropped unparsed. The type is a piece of the text (tests/opencode_http_test.cpp checks it
        // against the parsed type on every recorded event of the real opencode).
        std::string_view peeked = PeekEventType(event_data);
        if (!peeked.empty() && (peeked.data() < event_data.data() ||
                                peeked.data() + peeked.size() > event_data.data() + event_data.size())) {
            std::fprintf(stderr, "fuzz_events: PeekEventType pointed outside the event\n");
            std::abort();
        }
        if (!peeked.empty() && !IterationMachine::Reads(peeked)) continue;
        w.hub->Dispatch(v);
        HttpResult http;
        http.status = 200;
        http.body = event_data;
        (void)ReadMessages(http.Json(), "COMPLETE", size % 2 == 0);
        (void)http.Describe();
        last = std::move(v);
    }
    for (EventHub::Watch* watch : w.watches) Iterate(watch->events, last, size);
    w.io.poll();
    return 0;
}

}  // namespace ralph::fuzz
