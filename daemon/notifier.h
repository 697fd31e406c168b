// Notifier: wakes every coroutine waiting on it (a condition variable for one io_context thread).
// Waiters re-check their own condition after waking; spurious wake-ups are allowed.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <list>

namespace ralph {

class Notifier {
public:
    explicit Notifier(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}
    ~Notifier() { Notify(); }

    /// Wakes every current waiter.
    void Notify()
    {
        for (auto* t : waiters_) t->cancel();
    }

    /// Returns when notified or at the deadline.
    boost::asio::awaitable<void> WaitUntil(std::chrono::steady_clock::time_point deadline)
    {
        boost::asio::steady_timer timer(executor_, deadline);
        auto it = waiters_.insert(waiters_.end(), &timer);
        co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        waiters_.erase(it);
    }

    boost::asio::awaitable<void> WaitFor(std::chrono::steady_clock::duration d)
    {
        co_await WaitUntil(std::chrono::steady_clock::now() + d);
    }

private:
    boost::asio::any_io_executor executor_;
    std::list<boost::asio::steady_timer*> waiters_;
};

}  // namespace ralph
