// Notifier: wakes every coroutine waiting on it (a condition variable for one io_context thread).
// Waiters re-check their own condition after waking; spurious wake-ups are allowed.
#pragma once

#include "common/clock.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <list>

namespace ralph {

class Notifier {
public:
    explicit Notifier(boost::asio::any_io_executor executor, Clock& clock = SystemClock())
        : executor_(std::move(executor)), clock_(clock)
    {
    }
    ~Notifier() { Notify(); }

    /// Wakes every current waiter.
    void Notify()
    {
        for (auto* t : waiters_) t->cancel();
    }

    /// Returns when notified or at the deadline.
    boost::asio::awaitable<void> WaitUntil(std::chrono::steady_clock::time_point deadline)
    {
        boost::asio::steady_timer timer(executor_);
        auto it = waiters_.insert(waiters_.end(), &timer);
        co_await clock_.WaitUntil(timer, deadline);
        waiters_.erase(it);
    }

    boost::asio::awaitable<void> WaitFor(std::chrono::steady_clock::duration d)
    {
        co_await WaitUntil(clock_.Now() + d);
    }

private:
    boost::asio::any_io_executor executor_;
    Clock& clock_;
    std::list<boost::asio::steady_timer*> waiters_;
};

}  // namespace ralph
