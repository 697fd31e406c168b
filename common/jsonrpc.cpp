#include "common/jsonrpc.h"

#include "common/errors.h"
#include "common/text.h"

#include <boost/json/basic_parser_impl.hpp>

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

/// Finds the text of each element's numeric "id" as it appears in the line (a basic_parser
/// handler: Boost.JSON keeps no number's text, and a big one becomes a double).
class IdTextScanner {
public:
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    std::vector<std::string> ids;  ///< per element; "" when its id is not a number

    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }
    bool on_array_begin(boost::system::error_code&)
    {
        if (stack_.empty()) batch_ = true;
        else Value("");
        stack_.push_back('[');
        return true;
    }
    bool on_array_end(std::size_t, boost::system::error_code&) { return Pop(); }
    bool on_object_begin(boost::system::error_code&)
    {
        Value("");
        stack_.push_back('{');
        return true;
    }
    bool on_object_end(std::size_t, boost::system::error_code&) { return Pop(); }
    bool on_string_part(json::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, boost::system::error_code&) { return Value(""); }
    bool on_key_part(json::string_view s, std::size_t, boost::system::error_code&)
    {
        key_.append(s.data(), s.size());
        return true;
    }
    bool on_key(json::string_view s, std::size_t, boost::system::error_code&)
    {
        key_.append(s.data(), s.size());
        id_next_ = key_ == "id" && stack_.size() == (batch_ ? 2u : 1u);
        key_.clear();
        return true;
    }
    bool on_number_part(json::string_view s, boost::system::error_code&)
    {
        number_.append(s.data(), s.size());
        return true;
    }
    bool on_int64(int64_t, json::string_view s, boost::system::error_code&) { return Number(s); }
    bool on_uint64(uint64_t, json::string_view s, boost::system::error_code&) { return Number(s); }
    bool on_double(double, json::string_view s, boost::system::error_code&) { return Number(s); }
    bool on_bool(bool, boost::system::error_code&) { return Value(""); }
    bool on_null(boost::system::error_code&) { return Value(""); }
    bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_comment(json::string_view, boost::system::error_code&) { return true; }

private:
    bool Number(json::string_view last)
    {
        number_.append(last.data(), last.size());
        Value(number_);
        number_.clear();
        return true;
    }
    /// A value begins (or a scalar is complete): a new element at the top, or an element's id.
    bool Value(const std::string& number_text)
    {
        if (stack_.empty() || (batch_ && stack_.size() == 1)) ids.emplace_back();
        if (id_next_) ids.back() = number_text;
        id_next_ = false;
        return true;
    }
    bool Pop()
    {
        stack_.pop_back();
        return true;
    }
    std::vector<char> stack_;
    bool batch_{false};
    bool id_next_{false};
    std::string key_, number_;
};

/// Each element's id text when some id is a double (rare: the scan is a second parse).
std::vector<std::string> IdTexts(std::string_view line, const json::value& v)
{
    auto is_double_id = [](const json::value& e) {
        auto* id = e.is_object() ? e.as_object().if_contains("id") : nullptr;
        return id && id->is_double();
    };
    bool any = is_double_id(v);
    if (v.is_array())
        for (const json::value& e : v.as_array()) any = any || is_double_id(e);
    if (!any) return {};
    json::basic_parser<IdTextScanner> parser{json::parse_options{}};
    boost::system::error_code ec;
    parser.write_some(false, line.data(), line.size(), ec);
    if (ec) return {};
    return std::move(parser.handler().ids);
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
    } else {
        msg.items.push_back(ParseElement(v));
    }
    msg.id_texts = IdTexts(line, v);
    if (msg.id_texts.size() != msg.items.size()) msg.id_texts.assign(msg.items.size(), "");
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

/// One response serialised, its id written as `id_text` when that is given. MakeResult and
/// MakeError put the id last, so it is the serialised text's tail.
static std::string SerializeResponse(const json::object& response, const std::string& id_text)
{
    std::string out = json::serialize(response);
    auto* id = response.if_contains("id");
    if (id_text.empty() || !id || !id->is_number()) return out;
    std::string tail = "\"id\":" + json::serialize(*id) + "}";
    if (out.size() >= tail.size() && out.compare(out.size() - tail.size(), tail.size(), tail) == 0)
        out.replace(out.size() - tail.size(), tail.size(), "\"id\":" + id_text + "}");
    return out;
}

std::optional<std::string> Encode(bool batch, std::vector<json::object> responses, const std::vector<std::string>& id_texts)
{
    if (responses.empty()) return std::nullopt;
    auto id_text = [&](std::size_t i) { return i < id_texts.size() ? id_texts[i] : std::string(); };
    std::string out;
    if (batch) {
        out = "[";
        for (std::size_t i = 0; i < responses.size(); ++i) {
            if (i) out += ',';
            out += SerializeResponse(responses[i], id_text(i));
        }
        out += ']';
    } else {
        out = SerializeResponse(responses.front(), id_text(0));
    }
    out += '\n';
    return ValidUtf8Line(std::move(out));
}

std::string ValidUtf8Line(std::string line)
{
    // Structural JSON is ASCII, so bytes that are not UTF-8 lie inside strings, where U+FFFD
    // (no quote, no backslash) can stand in for them.
    if (IsValidUtf8(line)) return line;
    return ToValidUtf8(line);
}

}  // namespace ralph::jsonrpc
