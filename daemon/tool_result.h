// What a finished tool call did, from opencode's ToolPart, as the data of a run's "tool" event:
// for bash the exit status and the output, for file edits the files and lines added/removed.
#pragma once

#include <boost/json.hpp>

#include <string>

namespace ralph {

/// Bytes of a tool's output kept in the event (its end: that is where errors and summaries are).
inline constexpr std::size_t kToolOutputKeep = 64 * 1024;

/// The "tool" event data for a ToolPart ({"type":"tool","tool":…,"state":{status,title,output,
/// metadata,error,input}}): tool, title, status, error; bash adds exit (int, or null when killed),
/// output (with output_truncated when cut) and note (opencode's own remark: "User aborted the
/// command"); edits add files [{file, additions, deletions}],
/// paths relative to project_root when inside it.
boost::json::object ToolEventData(const boost::json::value& part, const std::string& project_root);

}  // namespace ralph
