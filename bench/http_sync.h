// ralph's HttpCall, run to completion on a private io_context: for the benchmark's own set-up
// requests (health checks, dispose), where blocking is what we want.
#pragma once

#include "daemon/opencode_http.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

namespace ralph::bench {

inline HttpResult HttpSync(const ServerEndpoint& server, boost::beast::http::verb method, const std::string& target,
                           std::string body, std::chrono::milliseconds timeout)
{
    boost::asio::io_context io;
    HttpResult result;
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
            result = co_await HttpCall(server, method, target, std::move(body), timeout);
        },
        boost::asio::detached);
    io.run();
    return result;
}

}  // namespace ralph::bench
