#include "daemon/rpc_table.h"

#include "common/errors.h"
#include "common/jsonrpc.h"
#include "common/log.h"
#include "daemon/store.h"

namespace ralph {

void RpcTable::Add(const std::vector<RpcMethod>& methods)
{
    for (const RpcMethod& m : methods) {
        if (!by_name_.emplace(m.spec.name, &m).second)
            throw std::logic_error(std::string("method registered twice: ") + m.spec.name);
        ordered_.push_back(&m);
    }
}

const RpcMethod* RpcTable::Find(std::string_view name) const
{
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

std::vector<const MethodSpec*> RpcTable::Specs() const
{
    std::vector<const MethodSpec*> out;
    for (const RpcMethod* m : ordered_) out.push_back(&m->spec);
    return out;
}

void RegisterAllMethods(RpcTable& table)
{
    table.Add(DaemonMethods());
    table.Add(ServerMethods());
    table.Add(TaskMethods());
    table.Add(RunMethods());
    table.Add(GitMethods());
    table.Add(AttachMethods());
    table.Add(ImportMethods());
}

static asio::awaitable<json::object> Dispatch(const RpcTable& table, CallContext& ctx, const jsonrpc::Request& req)
{
    int code = 0;
    std::string message;
    try {
        const RpcMethod* m = table.Find(req.method);
        if (!m) throw RpcError(kMethodNotFound, "method not found: " + req.method);
        if (table.warming_up() && req.method.rfind("daemon.", 0) != 0)
            throw RpcError(kWarmingUp, "ralphd is starting: it is still stopping what a previous ralphd left running; "
                                       "try again in a moment");
        CheckParams(m->spec, req.params);
        static const json::object empty;
        const json::object& params = req.params.is_object() ? req.params.as_object() : empty;
        json::value result = co_await m->handler(ctx, params);
        co_return jsonrpc::MakeResult(req.id, std::move(result));
    } catch (const ClientGone&) {
        throw;
    } catch (const RpcError& e) {
        code = e.code;
        message = e.what();
    } catch (const StoreError& e) {
        Log(LogLevel::Error) << req.method << ": " << e.what();
        code = kInternalError;
        message = std::string("internal error: ") + e.what();
    } catch (const std::exception& e) {
        Log(LogLevel::Error) << req.method << ": unexpected error: " << e.what();
        code = kInternalError;
        message = "internal error (see the ralphd log)";
    }
    co_return jsonrpc::MakeError(req.id, code, message);
}

asio::awaitable<std::optional<std::string>> HandleLine(const RpcTable& table, CallContext& ctx, std::string_view line)
{
    jsonrpc::Message msg = jsonrpc::Parse(line);
    if (msg.error) co_return jsonrpc::Encode(false, {*msg.error});
    std::vector<json::object> replies;
    std::vector<std::string> id_texts;  // aligned with replies
    for (std::size_t i = 0; i < msg.items.size(); ++i) {
        auto& item = msg.items[i];
        if (auto* error = std::get_if<json::object>(&item)) {
            replies.push_back(std::move(*error));
            id_texts.push_back(msg.id_texts[i]);
            continue;
        }
        auto& req = std::get<jsonrpc::Request>(item);
        json::object reply = co_await Dispatch(table, ctx, req);
        if (!req.notification) {
            replies.push_back(std::move(reply));
            id_texts.push_back(msg.id_texts[i]);
        }
    }
    co_return jsonrpc::Encode(msg.batch, std::move(replies), id_texts);
}

std::string ParamString(const json::object& params, const char* name, const std::string& fallback)
{
    auto* v = params.if_contains(name);
    if (!v || v->is_null()) return fallback;
    if (v->is_string()) return std::string(v->as_string());
    return json::serialize(*v);
}

std::optional<int64_t> ParamInt(const json::object& params, const char* name)
{
    auto* v = params.if_contains(name);
    if (!v || v->is_null()) return std::nullopt;
    if (v->is_int64()) return v->as_int64();
    if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
    return std::nullopt;
}

bool ParamBool(const json::object& params, const char* name, bool fallback)
{
    auto* v = params.if_contains(name);
    return v && v->is_bool() ? v->as_bool() : fallback;
}

}  // namespace ralph
