#include "common/jsonrpc.h"

#include "common/errors.h"

namespace ralph::jsonrpc {

namespace {

Item ParseElement(const json::value& v)
{
    const json::value null_id;
    if (!v.is_object()) return MakeError(null_id, kInvalidRequest, "invalid request: not an object");
    const json::object& o = v.as_object();

    // The id decides whether we may answer at all; a malformed id is answered with a null id.
    json::value id;
    bool notification = true;
    if (auto* it = o.if_contains("id")) {
        if (!(it->is_string() || it->is_number() || it->is_null()))
            return MakeError(null_id, kInvalidRequest, "invalid request: id must be a string, number or null");
        id = *it;
        notification = false;
    }
    auto* version = o.if_contains("jsonrpc");
    if (!version || !version->is_string() || version->as_string() != "2.0")
        return MakeError(notification ? null_id : id, kInvalidRequest, "invalid request: jsonrpc must be \"2.0\"");
    auto* method = o.if_contains("method");
    if (!method || !method->is_string())
        return MakeError(notification ? null_id : id, kInvalidRequest, "invalid request: method must be a string");
    json::value params;
    if (auto* p = o.if_contains("params")) {
        if (!p->is_object() && !p->is_array())
            return MakeError(notification ? null_id : id, kInvalidRequest,
                             "invalid request: params must be an object or an array");
        params = *p;
    }
    return Request{std::move(id), notification, std::string(method->as_string()), std::move(params)};
}

}  // namespace

Message Parse(std::string_view line)
{
    Message msg;
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec) {
        msg.error = MakeError(nullptr, kParseError, "parse error: " + ec.message());
        return msg;
    }
    if (v.is_array()) {
        const json::array& a = v.as_array();
        if (a.empty()) {
            msg.error = MakeError(nullptr, kInvalidRequest, "invalid request: empty batch");
            return msg;
        }
        msg.batch = true;
        for (const json::value& e : a) msg.items.push_back(ParseElement(e));
        return msg;
    }
    msg.items.push_back(ParseElement(v));
    return msg;
}

json::object MakeResult(const json::value& id, json::value result)
{
    return {{"jsonrpc", "2.0"}, {"result", std::move(result)}, {"id", id}};
}

json::object MakeError(const json::value& id, int code, std::string_view message)
{
    return {{"jsonrpc", "2.0"}, {"error", {{"code", code}, {"message", message}}}, {"id", id}};
}

json::object MakeNotification(std::string_view method, json::value params)
{
    return {{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}};
}

json::object MakeRequest(const json::value& id, std::string_view method, json::value params)
{
    json::object o{{"jsonrpc", "2.0"}, {"method", method}, {"id", id}};
    if (!params.is_null()) o["params"] = std::move(params);
    return o;
}

std::optional<std::string> Encode(bool batch, std::vector<json::object> responses)
{
    if (responses.empty()) return std::nullopt;
    std::string out;
    if (batch) {
        json::array a;
        a.reserve(responses.size());
        for (auto& r : responses) a.emplace_back(std::move(r));
        out = json::serialize(a);
    } else {
        out = json::serialize(responses.front());
    }
    out += '\n';
    return out;
}

}  // namespace ralph::jsonrpc
