// How runs look on the socket (SPEC §4 `status --json`), and finding a run from what a user typed.
#pragma once

#include "common/status.h"
#include "daemon/opencode_http.h"
#include "daemon/store.h"

#include <boost/json.hpp>

#include <optional>
#include <string>

namespace ralph {

/// A run as JSON. `server_url` is set only when the run is running and the server is live now:
/// a historical port is never shown as live.
boost::json::object RunJson(const RunRow& run, const std::optional<ServerEndpoint>& live);
boost::json::object IterationJson(const IterationRow& it);
/// {"max_cost", "max_tokens", "max_time"}, each null when not set (SPEC §11).
boost::json::object BudgetJson(const RunBudget& budget);

/// A run reference: a run id (integer, or a string of digits), or a task reference resolved
/// against cwd, meaning that task's running run, else its latest. Fails with NOT_FOUND /
/// TASK_NOT_FOUND and what to do.
Result<RunRow> ResolveRun(RunStore& store, const boost::json::value& ref, const std::string& cwd);

}  // namespace ralph
