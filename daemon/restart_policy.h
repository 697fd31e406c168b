// RestartPolicy: when the server supervisor restarts a failed opencode server (SPEC §3). Pure:
// the caller passes the time, so it is unit-tested without a clock.
#pragma once

#include "common/duration.h"

#include <chrono>
#include <deque>
#include <optional>

namespace ralph {

/// When to restart a failed server: the delay doubles from `initial` up to `max`, goes back to
/// `initial` after the server ran `stable` long, and once `burst` starts happened within
/// `interval` there is no further restart (fatal).
class RestartPolicy {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    struct Limits {
        Millis initial{std::chrono::seconds(1)};
        Millis max{std::chrono::seconds(60)};
        int burst{5};
        Millis interval{std::chrono::minutes(5)};
        Millis stable{std::chrono::minutes(1)};
    };

    explicit RestartPolicy(Limits limits);
    /// A start attempt begins now (the first one and every restart).
    void OnStart(TimePoint now);
    /// The server failed now, after running healthy for `up_for` (zero when it never came up).
    /// Returns how long to wait before the next start, or nothing when the start limit is reached.
    std::optional<Millis> OnFailure(TimePoint now, Millis up_for);
    /// An explicit start or stop: forget the history.
    void Reset();
    /// New limits from a reloaded config; the history of starts stays.
    void SetLimits(Limits limits) { limits_ = limits; }
    /// Starts counted in the window ending now.
    int StartsInWindow(TimePoint now) const;
    const Limits& limits() const { return limits_; }

private:
    void Prune(TimePoint now) const;
    Limits limits_;
    mutable std::deque<TimePoint> starts_;
    Millis next_delay_;
};

}  // namespace ralph
