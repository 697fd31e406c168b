#include "daemon/event_hub.h"

#include "common/log.h"
#include "daemon/iteration.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace ralph {

namespace json = boost::json;
namespace asio = boost::asio;

EventHub::EventHub(asio::io_context& io, ServerAccess& server, OpencodeClientFactory clients)
    : io_(io), server_access_(server), clients_(std::move(clients)), state_changed_(io.get_executor())
{
}

EventHub::~EventHub() { Close(); }

void EventHub::Add(Watch* watch) { watches_.emplace(watch->session_id, watch); }

void EventHub::Remove(Watch* watch)
{
    auto [begin, end] = watches_.equal_range(watch->session_id);
    for (auto it = begin; it != end; ++it) {
        if (it->second == watch) {
            watches_.erase(it);
            return;
        }
    }
}

void EventHub::Close()
{
    if (stream_) stream_->events->Close();
    stream_.reset();
    connected_ = false;
    state_changed_.Notify();
}

asio::awaitable<bool> EventHub::Connect(const ServerEndpoint& server, std::chrono::milliseconds timeout)
{
    if (stream_ && (server_.port != server.port || server_.password != server.password)) Close();
    if (!stream_) {
        server_ = server;
        stream_ = std::make_shared<Stream>();
        stream_->client = clients_(server);
        stream_->events = stream_->client->Events();
        asio::co_spawn(io_, RunStream(stream_, server), asio::detached);
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!connected_ && stream_ && std::chrono::steady_clock::now() < deadline)
        co_await state_changed_.WaitUntil(deadline);
    co_return connected_;
}

asio::awaitable<void> EventHub::RunStream(std::shared_ptr<Stream> stream, ServerEndpoint server)
{
    try {
        co_await ReadStream(stream, server);
    } catch (const std::exception& e) {
        Log(LogLevel::Error) << "event stream of " << server.url() << ": " << e.what();
    }
    if (stream_ == stream) Close();
}

asio::awaitable<void> EventHub::ReadStream(std::shared_ptr<Stream> stream, ServerEndpoint server)
{
    bool first = true;
    while (stream_ == stream) {
        Status ended = co_await stream->events->Run(
            std::chrono::seconds(35),
            [&] {
                connected_ = true;
                if (!first) {
                    Log(LogLevel::Info) << "event stream of " << server.url() << " reconnected";
                    for (auto& [sid, w] : watches_) {
                        w->resync = true;
                        w->notifier.Notify();
                    }
                }
                first = false;
                state_changed_.Notify();
            },
            IterationMachine::Reads, [this](json::value v) { Dispatch(std::move(v)); });
        if (stream_ != stream) break;
        connected_ = false;
        state_changed_.Notify();
        Log(LogLevel::Debug) << "event stream of " << server.url() << " ended: " << (ended.ok() ? "end of stream" : ended.message());
        for (auto& [sid, w] : watches_) {
            w->resync = true;
            w->notifier.Notify();
        }
        // Reconnect while the server is live at the same address; otherwise stop until asked again.
        auto live = server_access_.Live();
        if (!live || live->port != server.port || live->password != server.password) {
            if (stream_ == stream) stream_.reset();
            break;
        }
        asio::steady_timer pause(io_, std::chrono::milliseconds(200));
        co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
        stream->events = stream->client->Events();
    }
}

void EventHub::Dispatch(json::value event)
{
    ++events_received_;
    if (!event.is_object()) return;
    auto* payload = event.as_object().if_contains("payload");
    if (!payload || !payload->is_object()) return;
    json::object& p = payload->as_object();
    auto* props = p.if_contains("properties");
    if (!props || !props->is_object()) return;
    auto* sid = props->as_object().if_contains("sessionID");
    if (!sid || !sid->is_string()) return;
    auto [begin, end] = watches_.equal_range(std::string(sid->as_string()));
    for (auto it = begin; it != end; ++it) {
        // The last (almost always the only) watch takes the payload itself, the others a copy.
        if (std::next(it) == end) it->second->events.push_back(std::move(p));
        else it->second->events.push_back(p);
        it->second->notifier.Notify();
    }
}

}  // namespace ralph
