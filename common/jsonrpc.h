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
    /// Aligned with items: the id's text as sent when it is a number that would not serialise
    /// back the same (123456789012345678901234567890 is a double here), else "".
    std::vector<std::string> id_texts;
};

/// Parses one line (without its '\n'). Never throws.
Message Parse(std::string_view line);

json::object MakeResult(const json::value& id, json::value result);
json::object MakeError(const json::value& id, int code, std::string_view message);
json::object MakeNotification(std::string_view method, json::value params);
json::object MakeRequest(const json::value& id, std::string_view method, json::value params);

/// Serialises responses for the wire: nothing for an empty batch reply (all notifications),
/// an array for a batch, the object itself otherwise. Appends the '\n'. id_texts, when given, is
/// aligned with responses: a non-empty one is written as that response's id, as it was sent.
/// The line is always valid UTF-8: bytes that are not become U+FFFD.
std::optional<std::string> Encode(bool batch, std::vector<json::object> responses,
                                  const std::vector<std::string>& id_texts = {});

/// A serialised message made valid UTF-8 (strings may carry file names that are not).
std::string ValidUtf8Line(std::string line);

}  // namespace ralph::jsonrpc
