#include "daemon/event_hub.h"

#include "common/log.h"
#include "daemon/server_supervisor.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

namespace ralph {

namespace json = boost::json;
namespace asio = boost::asio;

EventHub::EventHub(asio::io_context& io, ServerSupervisor& supervisor)
    : io_(io), supervisor_(supervisor), state_changed_(io.get_executor())
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
    if (stream_) stream_->Close();
    stream_.reset();
    connected_ = false;
    state_changed_.Notify();
}

asio::awaitable<bool> EventHub::Connect(const ServerEndpoint& server, std::chrono::milliseconds timeout)
{
    if (stream_ && (server_.port != server.port || server_.password != server.password)) Close();
    if (!stream_) {
        server_ = server;
        stream_ = std::make_shared<EventStream>(io_.get_executor());
        asio::co_spawn(io_, RunStream(stream_, server), asio::detached);
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!connected_ && stream_ && std::chrono::steady_clock::now() < deadline)
        co_await state_changed_.WaitUntil(deadline);
    co_return connected_;
}

asio::awaitable<void> EventHub::RunStream(std::shared_ptr<EventStream> stream, ServerEndpoint server)
{
    try {
        co_await ReadStream(stream, server);
    } catch (const std::exception& e) {
        Log(LogLevel::Error) << "event stream of " << server.url() << ": " << e.what();
    }
    if (stream_ == stream) Close();
}

asio::awaitable<void> EventHub::ReadStream(std::shared_ptr<EventStream> stream, ServerEndpoint server)
{
    bool first = true;
    while (stream_ == stream) {
        auto ec = co_await stream->Run(
            server, "/global/event", std::chrono::seconds(35),
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
            [this](const json::value& v) { Dispatch(v); });
        if (stream_ != stream) break;
        connected_ = false;
        state_changed_.Notify();
        Log(LogLevel::Debug) << "event stream of " << server.url() << " ended: " << ec.message();
        for (auto& [sid, w] : watches_) {
            w->resync = true;
            w->notifier.Notify();
        }
        // Reconnect while the server is live at the same address; otherwise stop until asked again.
        auto live = supervisor_.Live();
        if (!live || live->port != server.port || live->password != server.password) {
            if (stream_ == stream) stream_.reset();
            break;
        }
        asio::steady_timer pause(io_, std::chrono::milliseconds(200));
        co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
        *stream = EventStream(io_.get_executor());
    }
}

void EventHub::Dispatch(const json::value& event)
{
    ++events_received_;
    if (!event.is_object()) return;
    auto* payload = event.as_object().if_contains("payload");
    if (!payload || !payload->is_object()) return;
    const json::object& p = payload->as_object();
    auto* props = p.if_contains("properties");
    if (!props || !props->is_object()) return;
    auto* sid = props->as_object().if_contains("sessionID");
    if (!sid || !sid->is_string()) return;
    auto [begin, end] = watches_.equal_range(std::string(sid->as_string()));
    for (auto it = begin; it != end; ++it) {
        it->second->events.push_back(p);
        it->second->notifier.Notify();
    }
}

}  // namespace ralph
