// Durations as users write them in ralphd.conf, ralph.ini and flags: "90", "30s", "5m", "1h30m", "250ms";
// and points in time as people read them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ralph {

using Millis = std::chrono::milliseconds;

/// What ParseDuration accepts, for error messages that list the units (SPEC §13).
inline constexpr const char* kDurationUnits =
    "a number with a unit ms, s, m, h or d, such as 500ms, 30s, 15m, 2h, 1d or 1h30m (a bare number is seconds: 90 is 90s)";

/// A bare number means seconds. Returns nothing for anything malformed or negative.
std::optional<Millis> ParseDuration(std::string_view text);

/// The shortest exact form: "30m", "1h30m", "1.5s" is written "1500ms".
std::string FormatDuration(Millis d);

/// Unix milliseconds as local time in a strftime format, e.g. "%Y-%m-%d %H:%M".
std::string FormatLocalTime(int64_t unix_ms, const char* format);

/// Unix time now, in milliseconds (what runs and events record).
int64_t NowMillis();

}  // namespace ralph
