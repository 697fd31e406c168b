// StoreGuard: once a second, checks that the state database is still where it was opened and puts
// it back when it was deleted (RunStore::RestoreIfDeleted), and writes the run log events kept in
// memory while the database could not be written (RunStore::FlushKeptEvents). Says so in the log.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace ralph {

class RunStore;

class StoreGuard {
public:
    static constexpr std::chrono::seconds kInterval{1};

    /// `on_events_written` is called after kept events were written (to wake `run.events` followers).
    StoreGuard(boost::asio::io_context& io, RunStore& store, std::function<void()> on_events_written);
    /// A last try to write the kept events; logs how many are lost when it fails.
    ~StoreGuard();
    StoreGuard(const StoreGuard&) = delete;
    StoreGuard& operator=(const StoreGuard&) = delete;

    /// One round of checks; the timer calls it every kInterval.
    void Check();

private:
    void Arm();
    void ReportKeptEvents(std::size_t written);

    boost::asio::steady_timer timer_;
    RunStore& store_;
    std::function<void()> on_events_written_;
    std::string last_restore_error_;  ///< logged once, not every second
    std::size_t reported_kept_{0};    ///< kept events when last logged
    int64_t reported_lost_{0};
};

}  // namespace ralph
