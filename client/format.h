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
/// An iteration's (or iteration.end event's) checkpoint summary, "3 files +10 -2"; "-" without one.
/// For `ralph run -f`'s status line: "  stories 1/3  left: $0.38, 2300 tokens, 9m" from the run's
/// latest state event and the budget of its run.start event (empty parts left out).
std::string StoriesAndBudgetLeft(const boost::json::object& state, const boost::json::object& budget,
                                 long long started_at_ms, long long now_ms);
std::string Changes(const boost::json::value& iteration);

/// "12:03:44  #3  tool write: hello.txt" for a run event ({id, at, iteration, kind, data}).
/// verbose: a tool's whole output instead of its last lines.
std::string EventLine(const boost::json::object& event, bool verbose = false);

/// How many lines of a tool's output `ralph logs` shows without --verbose.
inline constexpr int kToolOutputTailLines = 5;

/// A tool event's outcome: " (exit 1)" or " (+3 -1)" after the tool line, then the output's last
/// lines (all of them when verbose), each on its own line starting with pad.
std::string ToolOutcome(const boost::json::value& data, bool verbose, const std::string& pad);

/// The lines of `ralph show` for what the earlier Python ralph recorded of an imported run (its
/// `legacy` object: agent, how it ran, story, workspace); empty for ralph's own runs.
std::string LegacyLines(const boost::json::value& run);

/// The server line above `ralph status`.
std::string ServerLine(const boost::json::object& server);

}  // namespace ralph
