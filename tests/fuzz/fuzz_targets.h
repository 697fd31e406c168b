// The fuzz targets: each takes one input and returns 0; a bug is a crash, a sanitizer report or an
// uncaught exception. libFuzzer calls them from LLVMFuzzerTestOneInput (tests/fuzz/fuzz_main.cpp,
// built with RALPH_FUZZ=ON and clang), and the test binary replays the corpus and every saved
// crash through them (tests/fuzz_replay_test.cpp), so a crash once found stays a regression test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

namespace ralph::fuzz {

/// A scratch directory under /tmp for a target's files, removed when the process exits.
inline std::string ScratchDir()
{
    static std::vector<std::string> dirs;
    char tmpl[] = "/tmp/ralph-fuzz-XXXXXX";
    dirs.emplace_back(mkdtemp(tmpl));
    if (dirs.size() == 1) {
        std::atexit([] {
            for (const std::string& d : dirs) {
                std::error_code ec;
                std::filesystem::remove_all(d, ec);
            }
        });
    }
    return dirs.back();
}

/// The request path: line framing, JSON-RPC parsing and the dispatch of every method, against a
/// real Daemon (database, supervisor, loop engine) in a scratch directory whose opencode binary does
/// not exist, so methods that need the server fail at once instead of starting one.
int Request(const uint8_t* data, std::size_t size);

/// The opencode event stream: SseParser over arbitrary splits of the bytes, each event's JSON, the
/// EventHub's dispatch to watching iterations, and the iteration's logic (IterationMachine) fed
/// with them, the clock and the session's messages.
int Events(const uint8_t* data, std::size_t size);

/// A task's files: prd.json, ralph.ini (and ralphd.conf), the prompt template and its rendering,
/// and the completion promise search. The first byte picks which; 0xff: a task directory named
/// by the rest (bytes that are not UTF-8 included).
int Task(const uint8_t* data, std::size_t size);

}  // namespace ralph::fuzz
