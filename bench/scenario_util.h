// What the benchmark scenarios share: interruption, sleeping, progress lines, units, configs.
#pragma once

#include "bench/world.h"

#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace ralph::bench {

/// Throws once SIGINT or SIGTERM arrived.
void CheckInterrupted();
/// Sleeps, giving up when interrupted.
void Sleep(std::chrono::steady_clock::duration d);
double MsSince(std::chrono::steady_clock::time_point t);
void Progress(const std::string& text);
double Mb(long kb);
std::string RandomWord();
/// ralphd.conf for a managed server on ports of its own.
std::string ManagedConfig(World& world, const std::string& extra = "");
int64_t Int(const boost::json::value& v);
/// Waits until none of the runs is running; returns the largest ended_at. Polls run.get of one
/// run at a time, a few times a second, so the polling itself costs ralphd next to nothing.
int64_t WaitRunsEnd(Ralphd& ralphd, const std::vector<int64_t>& ids, std::chrono::seconds timeout);

inline constexpr const char* kTextOnlyPrompt =
    "TEXTONLY Benchmark iteration: the scripted model answers at once, never with the promise.\n";

}  // namespace ralph::bench
