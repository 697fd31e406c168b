#include "proto/protocol.h"

#include "common/errors.h"

#include <sstream>

namespace ralph {

namespace json = boost::json;

const char* ParamTypeName(ParamType t)
{
    switch (t) {
    case ParamType::String: return "string";
    case ParamType::Integer: return "integer";
    case ParamType::Number: return "number";
    case ParamType::Boolean: return "boolean";
    case ParamType::StringOrInteger: return "string or integer";
    }
    return "?";
}

static bool Matches(ParamType t, const json::value& v)
{
    switch (t) {
    case ParamType::String: return v.is_string();
    case ParamType::Integer: return v.is_int64() || v.is_uint64();
    case ParamType::Number: return v.is_number();
    case ParamType::Boolean: return v.is_bool();
    case ParamType::StringOrInteger: return v.is_string() || v.is_int64() || v.is_uint64();
    }
    return false;
}

void CheckParams(const MethodSpec& spec, const json::value& params)
{
    if (spec.unchecked_params) return;
    if (params.is_array()) {
        if (params.as_array().empty() && spec.params.empty()) return;
        throw RpcError(kInvalidParams, std::string("invalid params: ") + spec.name +
                                           " takes named parameters (an object), not an array");
    }
    static const json::object empty;
    const json::object& given = params.is_object() ? params.as_object() : empty;
    for (const auto& [key, value] : given) {
        const ParamSpec* p = nullptr;
        for (const auto& candidate : spec.params)
            if (key == candidate.name) p = &candidate;
        if (!p) {
            std::string known;
            for (const auto& candidate : spec.params) known += std::string(known.empty() ? "" : ", ") + candidate.name;
            throw RpcError(kInvalidParams, "invalid params: unknown parameter '" + std::string(key) + "' for " +
                                               spec.name + (known.empty() ? " (it takes none)" : " (known: " + known + ")"));
        }
        if (value.is_null() && !p->required) continue;
        if (!Matches(p->type, value))
            throw RpcError(kInvalidParams, std::string("invalid params: '") + p->name + "' must be " +
                                               (p->type == ParamType::Integer ? "an " : "a ") + ParamTypeName(p->type) +
                                               ", got " + json::serialize(value).substr(0, 80));
        // Paths reach the system as C strings: "/etc\0x" would be checked and used as "/etc".
        if (value.is_string() && value.as_string().find('\0') != json::string::npos)
            throw RpcError(kInvalidParams, std::string("invalid params: '") + p->name +
                                               "' holds a NUL byte (\\u0000); remove it");
    }
    for (const auto& p : spec.params) {
        if (!p.required) continue;
        auto* v = given.if_contains(p.name);
        if (!v || v->is_null())
            throw RpcError(kInvalidParams, std::string("invalid params: missing required parameter '") + p.name +
                                               "' (" + ParamTypeName(p.type) + ")");
    }
}

std::string RenderProtocolMarkdown(const std::vector<const MethodSpec*>& methods)
{
    std::ostringstream out;
    out << "# ralphd socket protocol\n\n"
        << "Generated from the method table by `ralphd --protocol-doc`; a test keeps this file in step.\n\n"
        << "JSON-RPC 2.0 over a Unix stream socket, one message per line (`\\n`), at most 1 MiB a line.\n"
        << "Parameters are named (an object). Unknown parameters, and strings holding a NUL byte, are\n"
        << "refused with -32602. Replies are always valid UTF-8: bytes that are not (in a file name, say)\n"
        << "are replaced with U+FFFD. The response id is the request's id as it was sent.\n\n"
        << "| code | name |\n|---|---|\n";
    for (int code : {kParseError, kInvalidRequest, kMethodNotFound, kInvalidParams, kInternalError, kNotFound,
                     kTaskNotFound, kAlreadyRunning, kInvalidState, kServerUnavailable, kWarmingUp})
        out << "| " << code << " | `" << RpcCodeName(code) << "` |\n";
    out << "\n";
    for (const MethodSpec* m : methods) {
        out << "## `" << m->name << "`\n\n" << m->summary << "\n\n";
        if (m->params.empty()) {
            out << "Parameters: none.\n\n";
        } else {
            out << "| parameter | type | required | default | meaning |\n|---|---|---|---|---|\n";
            for (const auto& p : m->params)
                out << "| `" << p.name << "` | " << ParamTypeName(p.type) << " | " << (p.required ? "yes" : "no")
                    << " | " << (p.default_text[0] ? p.default_text : "-") << " | " << p.description << " |\n";
            out << "\n";
        }
        out << "Result: " << m->result << "\n\n";
    }
    return out.str();
}

}  // namespace ralph
