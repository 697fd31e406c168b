// EventHub: one `/global/event` stream per opencode server, shared by every run, dispatching
// events to the iterations watching their sessions. When the stream breaks it reconnects (while
// the server is live) and flags every watch for a resync, since events may have been missed.
// Runs on the daemon's io_context thread.
#pragma once

#include "daemon/notifier.h"
#include "daemon/opencode_http.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <deque>
#include <map>
#include <memory>
#include <string>

namespace ralph {

class ServerSupervisor;

class EventHub {
public:
    /// What an iteration sees of its session: queued event payloads ({type, properties}).
    struct Watch {
        explicit Watch(boost::asio::any_io_executor ex) : notifier(std::move(ex)) {}
        std::string session_id;
        std::deque<boost::json::object> events;
        bool resync{false};  ///< the stream reconnected; events may have been lost
        Notifier notifier;
    };

    EventHub(boost::asio::io_context& io, ServerSupervisor& supervisor);
    ~EventHub();

    void Add(Watch* watch);
    void Remove(Watch* watch);

    /// Makes sure the stream to `server` is connected, starting it when needed, and waits up to
    /// `timeout` for it. False when it could not connect.
    boost::asio::awaitable<bool> Connect(const ServerEndpoint& server, std::chrono::milliseconds timeout);
    /// Closes the stream (server stopped, daemon shutdown); a later Connect() starts it again.
    void Close();

    /// Events received since start, for tests and benchmarks.
    uint64_t events_received() const { return events_received_; }

    /// Hands one event of the stream ({directory, payload: {type, properties}}) to the watches of
    /// its session. Public for the fuzzer (tests/fuzz/fuzz_events.cpp); the stream calls it.
    void Dispatch(const boost::json::value& event);

private:
    boost::asio::awaitable<void> RunStream(std::shared_ptr<EventStream> stream, ServerEndpoint server);
    boost::asio::awaitable<void> ReadStream(std::shared_ptr<EventStream> stream, ServerEndpoint server);

    boost::asio::io_context& io_;
    ServerSupervisor& supervisor_;
    std::shared_ptr<EventStream> stream_;
    ServerEndpoint server_;
    bool connected_{false};
    Notifier state_changed_;
    std::multimap<std::string, Watch*> watches_;
    uint64_t events_received_{0};
};

}  // namespace ralph
