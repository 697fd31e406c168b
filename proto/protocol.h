// What the daemon and its clients share: the shape of a method's specification, and the
// names of run statuses, reasons and iteration outcomes (SPEC §1, §5).
#pragma once

#include <boost/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace ralph {

enum class ParamType { String, Integer, Number, Boolean, StringOrInteger };

struct ParamSpec {
    const char* name;
    ParamType type;
    bool required;
    const char* default_text;  ///< shown in the protocol reference; "" when required or none
    const char* description;
};

/// One socket method: its name, what it does, its typed parameters and the shape of its result.
/// The dispatcher checks arguments against it and docs/protocol.md is generated from it.
struct MethodSpec {
    const char* name;
    const char* summary;
    std::vector<ParamSpec> params;
    const char* result;
    bool unchecked_params{false};  ///< accept any params (only the JSON-RPC conformance tests use this)
};

const char* ParamTypeName(ParamType t);

/// Checks params (an object, or null for none) against the spec; throws RpcError(-32602)
/// naming the offending parameter. Unknown parameter names are refused too.
void CheckParams(const MethodSpec& spec, const boost::json::value& params);

/// The protocol reference in Markdown (docs/protocol.md), for the given methods in order.
std::string RenderProtocolMarkdown(const std::vector<const MethodSpec*>& methods);

}  // namespace ralph
