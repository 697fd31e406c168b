#include "daemon/child_command.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <memory>
#include <optional>

namespace ralph {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

asio::awaitable<void> ReadAll(asio::posix::stream_descriptor& stream, std::string& into, std::size_t limit)
{
    char buf[16384];
    for (;;) {
        auto [ec, n] = co_await stream.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
        if (n > 0 && into.size() < limit) into.append(buf, std::min(n, limit - into.size()));
        if (ec) co_return;  // EOF: the child and everything that inherited the pipe closed it
    }
}

}  // namespace

asio::awaitable<Result<CommandOutput>> RunChildCommand(ProcessLauncher& launcher, LaunchSpec spec, Millis timeout,
                                                       std::size_t max_output, pid_t* started)
{
    auto ex = co_await asio::this_coro::executor;
    auto launched = launcher.Launch(spec);
    if (auto* why = std::get_if<std::string>(&launched)) co_return Status(kInternalError, *why);
    const LaunchedProcess child = std::get<LaunchedProcess>(launched);
    if (started) *started = child.pid;

    // The exit, reported by the launcher's reaper, wakes `exited_wait`.
    struct Exit {
        explicit Exit(asio::any_io_executor e) : wait(std::move(e)) {}
        std::optional<ExitStatus> status;
        asio::steady_timer wait;
    };
    auto exit = std::make_shared<Exit>(ex);
    exit->wait.expires_at(asio::steady_timer::time_point::max());
    launcher.WatchExit(child.pid, [exit](ExitStatus s) {
        exit->status = s;
        exit->wait.cancel();
    });

    CommandOutput result;
    asio::posix::stream_descriptor out(ex, child.stdout_fd), err(ex, child.stderr_fd);
    asio::steady_timer deadline(ex, timeout);
    // Both pipes to their end (the child and whatever inherited them closed them), or the deadline.
    auto ended = co_await ((ReadAll(out, result.out, max_output) && ReadAll(err, result.err, max_output)) ||
                           deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (ended.index() == 1) {
        result.timed_out = true;
        if (!exit->status) launcher.SignalGroup(child.pid, SIGKILL);
    }
    while (!exit->status) co_await exit->wait.async_wait(asio::as_tuple(asio::use_awaitable));
    result.exit = *exit->status;
    co_return result;
}

}  // namespace ralph
