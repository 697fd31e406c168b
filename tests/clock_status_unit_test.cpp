// The fake clock (timers fire only when the test advances time, in deadline order), the Notifier
// on it, and Status/Result's mapping to JSON-RPC errors.
#include "common/clock.h"
#include "common/status.h"
#include "daemon/notifier.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <vector>

namespace ralph {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Runs what is ready; restart() because an io_context that ran out of work stays stopped.
void Poll(asio::io_context& io)
{
    io.restart();
    io.poll();
}

// Named coroutines, not lambdas, so that nothing they use dies before they end.
asio::awaitable<void> Sleep(FakeClock& clock, Clock::Duration d, std::function<void()> then)
{
    co_await clock.SleepFor(co_await asio::this_coro::executor, d);
    then();
}

asio::awaitable<void> WaitOn(Notifier& notifier, Clock::Duration d, int& wakes)
{
    co_await notifier.WaitFor(d);
    ++wakes;
}

TEST(UnitClock, SleepEndsOnlyWhenFakeTimePasses)
{
    asio::io_context io;
    FakeClock clock;
    bool woke = false;
    asio::co_spawn(io, Sleep(clock, 10s, [&] { woke = true; }), asio::detached);
    Poll(io);
    EXPECT_FALSE(woke);
    EXPECT_EQ(clock.pending(), 1u);
    clock.Advance(9s);
    Poll(io);
    EXPECT_FALSE(woke);
    clock.Advance(1s);
    Poll(io);
    EXPECT_TRUE(woke);
    EXPECT_EQ(clock.pending(), 0u);
}

TEST(UnitClock, TimersFireInDeadlineOrder)
{
    asio::io_context io;
    FakeClock clock;
    std::vector<int> order;
    for (int s : {30, 10, 20})
        asio::co_spawn(io, Sleep(clock, std::chrono::seconds(s), [&order, s] { order.push_back(s); }), asio::detached);
    Poll(io);
    clock.Advance(25s);
    Poll(io);
    ASSERT_EQ(order.size(), 2u);
    EXPECT_EQ(order[0], 10);
    EXPECT_EQ(order[1], 20);
    clock.Advance(5s);
    Poll(io);
    ASSERT_EQ(order.size(), 3u);
    EXPECT_EQ(order[2], 30);
}

TEST(UnitClock, NotifierWakesBeforeTheDeadlineAndAtIt)
{
    asio::io_context io;
    FakeClock clock;
    Notifier notifier(io.get_executor(), clock);
    int wakes = 0;
    asio::co_spawn(io, WaitOn(notifier, 1min, wakes), asio::detached);
    Poll(io);
    notifier.Notify();
    Poll(io);
    EXPECT_EQ(wakes, 1);  // by the notification, no time passed
    asio::co_spawn(io, WaitOn(notifier, 1min, wakes), asio::detached);
    Poll(io);
    clock.Advance(59s);
    Poll(io);
    EXPECT_EQ(wakes, 1);
    clock.Advance(1s);
    Poll(io);
    EXPECT_EQ(wakes, 2);  // by the deadline
}

TEST(UnitClock, ADeadlineAlreadyPastEndsTheWaitAtOnce)
{
    asio::io_context io;
    FakeClock clock;
    bool woke = false;
    asio::co_spawn(io, Sleep(clock, 0s, [&] { woke = true; }), asio::detached);
    Poll(io);
    EXPECT_TRUE(woke);
}

TEST(UnitStatus, ResultCarriesAValueOrACodeThatMapsToOneRpcError)
{
    Result<int> good(7);
    ASSERT_TRUE(good.ok());
    EXPECT_EQ(*good, 7);
    Result<int> bad(Status(kServerUnavailable, "the opencode server is not running: run `ralph server start`"));
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), kServerUnavailable);
    RpcError e = RpcErrorOf(bad.status());
    EXPECT_EQ(e.code, kServerUnavailable);
    EXPECT_STREQ(e.what(), "the opencode server is not running: run `ralph server start`");
    EXPECT_THROW(ValueOrThrow(std::move(bad)), RpcError);
    EXPECT_NO_THROW(ThrowIfError(Status::Ok()));
}

}  // namespace
}  // namespace ralph
