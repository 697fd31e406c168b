// The method table: every socket method with its spec and handler, and the dispatcher that
// turns one received line into the reply line. Handlers run on the daemon's io_context thread.
#pragma once

#include "proto/protocol.h"

#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ralph {

namespace json = boost::json;
namespace asio = boost::asio;

class Daemon;

/// Thrown by CallContext::notify when the caller has gone; the connection just ends.
struct ClientGone : std::exception {
    const char* what() const noexcept override { return "client went away"; }
};

/// What a handler may use besides its parameters.
struct CallContext {
    Daemon& daemon;
    /// Writes a notification to the caller's connection (run.events with follow).
    std::function<asio::awaitable<void>(json::object)> notify;
    /// Called once the reply has been written (daemon.shutdown replies first, then stops).
    std::function<void()> after_reply;
};

/// A handler throws RpcError for an application error; anything else becomes -32603.
using Handler = asio::awaitable<json::value> (*)(CallContext&, const json::object& params);

struct RpcMethod {
    MethodSpec spec;
    Handler handler;
};

class RpcTable {
public:
    /// Adds a domain's methods; a duplicate name is a programming error (throws).
    void Add(const std::vector<RpcMethod>& methods);
    const RpcMethod* Find(std::string_view name) const;
    std::vector<const MethodSpec*> Specs() const;
    /// While this says so, every method but the `daemon.*` ones answers WARMING_UP (SPEC §12):
    /// ralphd listens before it has reconciled what a previous daemon left.
    void SetWarmingUp(std::function<bool()> warming_up) { warming_up_ = std::move(warming_up); }
    bool warming_up() const { return warming_up_ && warming_up_(); }

private:
    std::function<bool()> warming_up_;
    std::vector<const RpcMethod*> ordered_;
    std::map<std::string, const RpcMethod*, std::less<>> by_name_;
};

/// Each domain's table, defined in its rpc_*.cpp file.
const std::vector<RpcMethod>& DaemonMethods();
const std::vector<RpcMethod>& ServerMethods();
const std::vector<RpcMethod>& TaskMethods();
const std::vector<RpcMethod>& RunMethods();
const std::vector<RpcMethod>& AttachMethods();
const std::vector<RpcMethod>& ImportMethods();
const std::vector<RpcMethod>& GitMethods();

/// The one place that registers every domain (nothing is added after serving starts).
void RegisterAllMethods(RpcTable& table);

/// Answers one line: the reply line (with '\n'), or nothing when no reply is due.
asio::awaitable<std::optional<std::string>> HandleLine(const RpcTable& table, CallContext& ctx, std::string_view line);

/// Helpers for handlers reading checked params.
std::string ParamString(const json::object& params, const char* name, const std::string& fallback = "");
std::optional<int64_t> ParamInt(const json::object& params, const char* name);
bool ParamBool(const json::object& params, const char* name, bool fallback = false);

}  // namespace ralph
