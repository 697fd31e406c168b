// Clock: where ralphd's timing code reads the time and sleeps, so that back-off, health checks,
// timeouts and stall detection can be unit-tested on fake time (FakeClock) with no wall-clock
// assertion. Everything runs on one io_context thread; so does the fake clock.
//
// Waiting is done with an asio steady_timer "armed" by the clock: the real clock sets its expiry;
// the fake one leaves it pending and cancels it once Advance() passes its deadline. Either way the
// wait ends with the timer firing or being cancelled, and the waiter checks Now() for which.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <list>

namespace ralph {

class Clock {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    using Duration = std::chrono::steady_clock::duration;

    virtual ~Clock() = default;
    virtual TimePoint Now() const = 0;
    /// Makes `timer` complete at `deadline` (or when cancelled). Pair with Disarm after the wait.
    virtual void Arm(boost::asio::steady_timer& timer, TimePoint deadline) = 0;
    virtual void Disarm(boost::asio::steady_timer& timer) = 0;

    /// Waits until `deadline`, or until `timer` (armed here) is cancelled by someone else.
    /// True when the deadline has passed.
    boost::asio::awaitable<bool> WaitUntil(boost::asio::steady_timer& timer, TimePoint deadline);
    /// Sleeps for `d` on a timer of its own (cancel-free).
    boost::asio::awaitable<void> SleepFor(boost::asio::any_io_executor executor, Duration d);
};

/// std::chrono::steady_clock and real timers.
class RealClock final : public Clock {
public:
    TimePoint Now() const override { return std::chrono::steady_clock::now(); }
    void Arm(boost::asio::steady_timer& timer, TimePoint deadline) override { timer.expires_at(deadline); }
    void Disarm(boost::asio::steady_timer&) override {}
};

/// The process's real clock.
Clock& SystemClock();

/// Time moves only when the test says: Advance() fires every timer whose deadline it passes, in
/// deadline order. Run the io_context (poll) after Advance to let the woken coroutines go on.
class FakeClock final : public Clock {
public:
    explicit FakeClock(TimePoint start = TimePoint(std::chrono::hours(1000))) : now_(start) {}
    TimePoint Now() const override { return now_; }
    void Arm(boost::asio::steady_timer& timer, TimePoint deadline) override;
    void Disarm(boost::asio::steady_timer& timer) override;
    void Advance(Duration d);
    /// Timers armed and not yet fired.
    size_t pending() const { return armed_.size(); }

private:
    struct Armed {
        boost::asio::steady_timer* timer;
        TimePoint deadline;
    };
    TimePoint now_;
    std::list<Armed> armed_;
};

}  // namespace ralph
