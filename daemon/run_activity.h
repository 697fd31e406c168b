// RunActivity: the loop engine's "something happened" notifier, with wake-ups per run. A follower
// of one run (`ralph logs -f`) waits on that run alone, so 40 followers of 40 loops do not each
// query the store on every event of every run; a follower of every run (`ralph top`) and the
// engine's own waits are woken by any run's activity.
#pragma once

#include "daemon/notifier.h"

#include <cstdint>
#include <map>

namespace ralph {

class RunActivity : public Notifier {
public:
    explicit RunActivity(boost::asio::any_io_executor executor, Clock& clock = SystemClock())
        : Notifier(executor, clock), executor_(std::move(executor)), clock_(clock)
    {
    }
    ~RunActivity() { Notify(); }

    /// Wakes every waiter: those of every run and those of each run (shutdown, a loop's end).
    void Notify()
    {
        ++count_;
        Notifier::Notify();
        for (auto& [run, waiters] : runs_)
            for (auto* t : waiters) t->cancel();
    }

    /// Run `run_id` has news: wakes its own waiters and the waiters for any run.
    void Notify(int64_t run_id)
    {
        ++count_;
        Notifier::Notify();
        if (auto it = runs_.find(run_id); it != runs_.end())
            for (auto* t : it->second) t->cancel();
    }

    /// Waits for news of any run (Notifier::WaitFor/WaitUntil) or, here, of one run.
    using Notifier::WaitFor;
    using Notifier::WaitUntil;
    boost::asio::awaitable<void> WaitFor(int64_t run_id, std::chrono::steady_clock::duration d)
    {
        boost::asio::steady_timer timer(executor_);
        auto& waiters = runs_[run_id];
        auto it = waiters.insert(waiters.end(), &timer);
        co_await clock_.WaitUntil(timer, clock_.Now() + d);
        auto entry = runs_.find(run_id);  // still there: our own waiter is in its list
        entry->second.erase(it);
        if (entry->second.empty()) runs_.erase(entry);
    }

    /// How many notifications there have been. A follower reads it before it looks at the store
    /// and waits only when it has not moved since: news that came while it was busy sending (and
    /// so not waiting) is not lost until the wait's timeout.
    uint64_t count() const { return count_; }

    /// How many runs have a waiter of their own (for tests).
    std::size_t runs_waited_on() const { return runs_.size(); }

private:
    boost::asio::any_io_executor executor_;
    Clock& clock_;
    std::map<int64_t, std::list<boost::asio::steady_timer*>> runs_;
    uint64_t count_{0};
};

}  // namespace ralph
