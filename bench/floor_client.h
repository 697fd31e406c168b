// The floor: a minimal client doing, per iteration, exactly the HTTP sequence ralph's loop engine
// does against opencode (create a session, prompt_async, wait for session.idle on the shared
// /global/event stream, read the messages), with ralph's own HTTP and SSE code and nothing else:
// no database, no event log, no socket clients. What ralph adds on top of it is ralph's cost.
#pragma once

#include "daemon/opencode_http.h"

#include <string>
#include <vector>

namespace ralph::bench {

struct FloorOptions {
    ServerEndpoint server;
    std::string directory;  ///< the project, passed as ?directory= on every request
    std::string prompt;     ///< the text sent in every iteration
    std::string title;      ///< session title prefix
    int iterations{30};
    /// Parse only the events whose type is session.idle (read from the text, as ralph skips the
    /// types it does not read): the least CPU a client of this sequence can spend.
    bool parse_only_idle{false};
};

struct FloorIteration {
    int64_t started_unix_ms{0};  ///< before POST /session
    double start_s{0};           ///< steady clock, before POST /session
    double create_ms{0};         ///< POST /session
    double prompt_ms{0};         ///< POST prompt_async
    double idle_ms{0};           ///< prompt_async answered -> session.idle seen
    double messages_ms{0};       ///< GET messages, parsed
    double total_ms{0};          ///< the whole iteration
    bool ok{false};              ///< the last assistant message completed without error
};

struct FloorResult {
    std::vector<FloorIteration> iterations;
    double wall_ms{0};  ///< from the event stream's connect to the last iteration's end
    double cpu_ms{0};   ///< the floor's own CPU for the whole run (its thread: user and system)
    std::string error;  ///< set when it had to give up
};

/// Runs the iterations one after the other on a private io_context.
FloorResult RunFloor(const FloorOptions& options);

}  // namespace ralph::bench
