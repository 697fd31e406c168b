// RestartPolicy: the delay doubling to its cap, the reset after a stable run, and the start
// limit, on time passed by the test.
#include "daemon/restart_policy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <vector>

namespace ralph::supervisor_test {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

RestartPolicy::Limits Limits(Millis initial, Millis max, int burst, Millis interval, Millis stable = 60s)
{
    return RestartPolicy::Limits{initial, max, burst, interval, stable};
}

TEST(UnitRestartPolicy, BackoffDoublesToTheCapThenFatalAtTheStartLimit)
{
    RestartPolicy p(Limits(1s, 8s, 7, 5min));
    SteadyClock::time_point t{};
    std::vector<long long> delays;
    for (;;) {
        p.OnStart(t);
        t += 100ms;  // crashes at once
        auto d = p.OnFailure(t, 0ms);
        if (!d) break;
        delays.push_back(std::chrono::duration_cast<std::chrono::seconds>(*d).count());
        t += *d;
    }
    EXPECT_EQ(delays, (std::vector<long long>{1, 2, 4, 8, 8, 8}));
    EXPECT_EQ(p.StartsInWindow(t), 7);

    // An explicit start forgets the history: the next failure waits 1 s again.
    p.Reset();
    p.OnStart(t);
    EXPECT_EQ(p.OnFailure(t + 1s, 0ms), std::optional<Millis>(1s));
}

TEST(UnitRestartPolicy, StableRunResetsTheBackoff)
{
    RestartPolicy p(Limits(1s, 60s, 100, 5min));
    SteadyClock::time_point t{};
    for (int i = 0; i < 4; ++i) {
        p.OnStart(t);
        t += *p.OnFailure(t, 0ms);
    }
    p.OnStart(t);
    EXPECT_EQ(p.OnFailure(t + 5s, 5s), std::optional<Millis>(16s));  // not stable yet: keeps doubling
    p.OnStart(t + 30s);
    EXPECT_EQ(p.OnFailure(t + 100s, 61s), std::optional<Millis>(1s));  // ran a stable minute
}

TEST(UnitRestartPolicy, StartsOutsideTheWindowDoNotCount)
{
    RestartPolicy p(Limits(1s, 1s, 3, 1min));
    SteadyClock::time_point t{};
    for (int i = 0; i < 10; ++i) {  // a crash every 40 s: never 3 starts within a minute
        p.OnStart(t);
        ASSERT_TRUE(p.OnFailure(t + 39s, 39s).has_value()) << "failure " << i;
        t += 40s;
    }
    p.OnStart(t);
    p.OnStart(t + 1s);
    p.OnStart(t + 2s);
    EXPECT_FALSE(p.OnFailure(t + 3s, 0ms).has_value());
}

TEST(UnitRestartPolicy, ACapBelowTheInitialDelayIsTheDelay)
{
    RestartPolicy p(Limits(10s, 3s, 10, 5min));
    SteadyClock::time_point t{};
    p.OnStart(t);
    EXPECT_EQ(p.OnFailure(t, 0ms), std::optional<Millis>(3s));
    p.OnStart(t + 3s);
    EXPECT_EQ(p.OnFailure(t + 3s, 0ms), std::optional<Millis>(3s));
}

TEST(UnitRestartPolicy, NewLimitsKeepTheHistoryOfStarts)
{
    RestartPolicy p(Limits(1s, 60s, 10, 5min));
    SteadyClock::time_point t{};
    for (int i = 0; i < 3; ++i) p.OnStart(t + std::chrono::seconds(i));
    p.SetLimits(Limits(1s, 60s, 3, 5min));  // a reload lowers the burst to the starts already made
    EXPECT_EQ(p.StartsInWindow(t + 3s), 3);
    EXPECT_FALSE(p.OnFailure(t + 3s, 0ms).has_value());
    EXPECT_EQ(p.StartsInWindow(t + 5min + 3s), 0);  // the window moved past them
}

}  // namespace
}  // namespace ralph::supervisor_test
