// JSON-RPC 2.0 codec: parsing one received line into requests, and building responses.
// Transport-free and synchronous so it can be tested against every example of the specification.
#pragma once

#include <boost/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ralph::jsonrpc {

namespace json = boost::json;

struct Request {
    json::value id;          ///< string, number or null; meaningless for a notification
    bool notification{false};
    std::string method;
    json::value params;      ///< object, array, or null when absent
};

/// One element of a received message: a request to dispatch, or the error response already
/// decided for an element that is not a valid request.
using Item = std::variant<Request, json::object>;

struct Message {
    bool batch{false};
    std::vector<Item> items;
    /// Set when the whole line is answered by this single error (parse error, empty batch).
    std::optional<json::object> error;
};

/// Parses one line (without its '\n'). Never throws.
Message Parse(std::string_view line);

json::object MakeResult(const json::value& id, json::value result);
json::object MakeError(const json::value& id, int code, std::string_view message);
json::object MakeNotification(std::string_view method, json::value params);
json::object MakeRequest(const json::value& id, std::string_view method, json::value params);

/// Serialises responses for the wire: nothing for an empty batch reply (all notifications),
/// an array for a batch, the object itself otherwise. Appends the '\n'.
std::optional<std::string> Encode(bool batch, std::vector<json::object> responses);

}  // namespace ralph::jsonrpc
