// FakeOpencodeClient: an OpencodeClient for unit tests. Each call is recorded by name; answers are
// what the test put in its fields (by default: success, session "ses_fake", empty lists). Copies
// share one call log, so a factory can hand out copies of one configured client.
#pragma once

#include "daemon/opencode_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ralph {

/// A stream that ends at once, as if the server did not answer.
class ClosedEventStream final : public OpencodeEventStream {
public:
    boost::asio::awaitable<Status> Run(std::chrono::milliseconds, std::function<void()>, EventTypeFilter,
                                       std::function<void(boost::json::value)>) override
    {
        co_return Status(kUpstreamUnreachable, "connection refused");
    }
    void Close() override {}
};

/// A stream that connects, hands over `events` (each `{directory, payload}`) and then stays open
/// until closed.
class ScriptedEventStream final : public OpencodeEventStream {
public:
    ScriptedEventStream(boost::asio::any_io_executor executor, std::vector<boost::json::value> events)
        : timer_(std::move(executor)), events_(std::move(events))
    {
    }
    boost::asio::awaitable<Status> Run(std::chrono::milliseconds, std::function<void()> connected, EventTypeFilter,
                                       std::function<void(boost::json::value)> on_event) override
    {
        if (connected) connected();
        for (const auto& e : events_) on_event(e);
        if (!closed_) {
            timer_.expires_at(boost::asio::steady_timer::time_point::max());
            co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        }
        co_return Status(kUpstreamUnreachable, "closed");
    }
    void Close() override
    {
        closed_ = true;
        timer_.cancel();
    }

private:
    boost::asio::steady_timer timer_;
    std::vector<boost::json::value> events_;
    bool closed_{false};
};

class FakeOpencodeClient final : public OpencodeClient {
public:
    explicit FakeOpencodeClient(ServerEndpoint server = {}) : server_(std::move(server)) {}

    std::shared_ptr<std::vector<std::string>> calls = std::make_shared<std::vector<std::string>>();  ///< "Providers /proj", ...
    /// Opens the event stream; by default one that ends at once.
    std::function<std::unique_ptr<OpencodeEventStream>()> events = [] { return std::make_unique<ClosedEventStream>(); };
    Result<std::string> health{std::string("1.18.33")};
    Result<std::string> session{std::string("ses_fake")};
    Result<boost::json::value> providers{boost::json::value(boost::json::object())};
    Result<boost::json::value> agents{boost::json::value(boost::json::array())};
    Result<boost::json::value> messages{boost::json::value(boost::json::array())};
    Result<boost::json::value> status{boost::json::value(boost::json::object())};
    Status prompt;

    const ServerEndpoint& endpoint() const override { return server_; }
    boost::asio::awaitable<Result<std::string>> Health(std::chrono::milliseconds) override
    {
        calls->push_back("Health");
        co_return health;
    }
    boost::asio::awaitable<Status> DisposeAll(std::chrono::milliseconds) override
    {
        calls->push_back("DisposeAll");
        co_return Status();
    }
    boost::asio::awaitable<Status> DisposeInstance(const std::string& directory) override
    {
        calls->push_back("DisposeInstance " + directory);
        co_return Status();
    }
    boost::asio::awaitable<Result<std::string>> CreateSession(const std::string& directory,
                                                              const boost::json::object&) override
    {
        calls->push_back("CreateSession " + directory);
        co_return session;
    }
    boost::asio::awaitable<Result<boost::json::value>> GetSession(const std::string& id, std::chrono::milliseconds) override
    {
        calls->push_back("GetSession " + id);
        co_return Result<boost::json::value>(boost::json::value(boost::json::object()));
    }
    boost::asio::awaitable<Result<boost::json::value>> SessionStatus(const std::string& directory) override
    {
        calls->push_back("SessionStatus " + directory);
        co_return status;
    }
    boost::asio::awaitable<Status> Prompt(const std::string& id, const std::string& directory,
                                          const boost::json::object&) override
    {
        calls->push_back("Prompt " + id + " " + directory);
        co_return prompt;
    }
    boost::asio::awaitable<Status> Abort(const std::string& id, const std::string& directory) override
    {
        calls->push_back("Abort " + id + " " + directory);
        co_return Status();
    }
    boost::asio::awaitable<Result<boost::json::value>> Messages(const std::string& id, const std::string& directory) override
    {
        calls->push_back("Messages " + id + " " + directory);
        co_return messages;
    }
    boost::asio::awaitable<Status> ReplyPermission(const std::string& id, const std::string& directory,
                                                   const std::string& reply, const std::string&) override
    {
        calls->push_back("ReplyPermission " + id + " " + directory + " " + reply);
        co_return Status();
    }
    boost::asio::awaitable<Status> RejectQuestion(const std::string& id, const std::string& directory) override
    {
        calls->push_back("RejectQuestion " + id + " " + directory);
        co_return Status();
    }
    boost::asio::awaitable<Result<boost::json::value>> Providers(const std::string& directory) override
    {
        calls->push_back("Providers " + directory);
        co_return providers;
    }
    boost::asio::awaitable<Result<boost::json::value>> Agents(const std::string& directory) override
    {
        calls->push_back("Agents " + directory);
        co_return agents;
    }
    std::unique_ptr<OpencodeEventStream> Events() override { return events(); }

private:
    ServerEndpoint server_;
};

}  // namespace ralph
