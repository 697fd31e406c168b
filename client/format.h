// Printing runs for people: tables, event lines and the server line (following a run: follow.h).
#pragma once

#include <boost/json.hpp>

#include <string>
#include <vector>

namespace ralph {

/// Prints rows under headers, columns padded to their widest cell; control characters in cells
/// are shown escaped (Printable).
void PrintTable(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows);

/// The text of a JSON field: strings as they are, null as "-", numbers and the rest serialised.
std::string Field(const boost::json::value& object, const char* key);

/// "12:03:44  #3  tool write: hello.txt" for a run event ({id, at, iteration, kind, data}).
std::string EventLine(const boost::json::object& event);

/// The lines of `ralph show` for what the earlier Python ralph recorded of an imported run (its
/// `legacy` object: agent, how it ran, story, workspace); empty for ralph's own runs.
std::string LegacyLines(const boost::json::value& run);

/// The server line above `ralph status`.
std::string ServerLine(const boost::json::object& server);

}  // namespace ralph
