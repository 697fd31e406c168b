// EventHub: one `/global/event` stream per opencode server, shared by every run, dispatching
// events to the iterations watching their sessions. When the stream breaks it reconnects (while
// the server is live) and flags every watch for a resync, since events may have been missed.
// Runs on the daemon's io_context thread.
#pragma once

#include "daemon/notifier.h"
#include "daemon/opencode_client.h"
#include "daemon/server_access.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <deque>
#include <map>
#include <memory>
#include <string>

namespace ralph {

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

    /// `server` says whether the server is still live when the stream breaks; `clients` opens it.
    EventHub(boost::asio::io_context& io, ServerAccess& server, OpencodeClientFactory clients);
    EventHub(boost::asio::io_context& io, ServerAccess& server)
        : EventHub(io, server, HttpOpencodeClients(io.get_executor()))
    {
    }
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

    /// Hands one event of the stream ({directory, payload: {type, properties}}; only the types
    /// IterationMachine::Reads reach it parsed) to the watches of
    /// its session. Public for the fuzzer (tests/fuzz/fuzz_events.cpp); the stream calls it.
    void Dispatch(boost::json::value event);

private:
    /// One connection's stream; its identity tells a stale reader that it was replaced.
    struct Stream {
        std::unique_ptr<OpencodeClient> client;
        std::unique_ptr<OpencodeEventStream> events;
    };
    boost::asio::awaitable<void> RunStream(std::shared_ptr<Stream> stream, ServerEndpoint server);
    boost::asio::awaitable<void> ReadStream(std::shared_ptr<Stream> stream, ServerEndpoint server);

    boost::asio::io_context& io_;
    ServerAccess& server_access_;
    OpencodeClientFactory clients_;
    std::shared_ptr<Stream> stream_;
    ServerEndpoint server_;
    bool connected_{false};
    Notifier state_changed_;
    std::multimap<std::string, Watch*> watches_;
    uint64_t events_received_{0};
};

}  // namespace ralph
