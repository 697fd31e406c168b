#include "common/clock.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace ralph {

namespace asio = boost::asio;

asio::awaitable<bool> Clock::WaitUntil(asio::steady_timer& timer, TimePoint deadline)
{
    Arm(timer, deadline);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    Disarm(timer);
    co_return Now() >= deadline;
}

asio::awaitable<void> Clock::SleepFor(asio::any_io_executor executor, Duration d)
{
    asio::steady_timer timer(executor);
    const TimePoint deadline = Now() + d;
    while (!co_await WaitUntil(timer, deadline)) {
    }
}

Clock& SystemClock()
{
    static RealClock clock;
    return clock;
}

void FakeClock::Arm(asio::steady_timer& timer, TimePoint deadline)
{
    if (deadline <= now_) {
        timer.expires_after(std::chrono::steady_clock::duration::zero());  // already due: completes at once
        return;
    }
    // Pending until Advance() cancels it. (Not time_point::max(): asio's timer queue can treat it
    // as already expired.)
    timer.expires_after(std::chrono::hours(24 * 365 * 100));
    armed_.push_back({&timer, deadline});
}

void FakeClock::Disarm(asio::steady_timer& timer)
{
    armed_.remove_if([&](const Armed& a) { return a.timer == &timer; });
}

void FakeClock::Advance(Duration d)
{
    const TimePoint end = now_ + d;
    // Fire due timers in deadline order, with Now() at each one's deadline.
    for (;;) {
        auto next = armed_.end();
        for (auto it = armed_.begin(); it != armed_.end(); ++it)
            if (it->deadline <= end && (next == armed_.end() || it->deadline < next->deadline)) next = it;
        if (next == armed_.end()) break;
        now_ = std::max(now_, next->deadline);
        asio::steady_timer* t = next->timer;
        armed_.erase(next);
        t->cancel();
    }
    now_ = end;
}

}  // namespace ralph
