// Checks made before a run is created or an iteration is sent (SPEC §8 "Up-front checks"): the
// model and the agent against what the opencode server offers, and a prompt that is really there.
#pragma once

#include "common/status.h"
#include "daemon/config.h"
#include "daemon/opencode_client.h"
#include "daemon/task.h"

#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>

#include <string>

namespace ralph {

/// Why `model` (provider/model) is not offered by a `GET /config/providers` answer, listing what
/// is and the closest name; "" when it is offered.
std::string ModelProblem(const boost::json::value& providers, const std::string& model);

/// Why `agent` is not among a `GET /agent` answer, listing the agents a user can pick (hidden ones
/// left out) and the closest name; "" when it exists.
std::string AgentProblem(const boost::json::value& agents, const std::string& agent);

/// For a run with max_cost: why that budget can never trip because `model` (empty: the first
/// provider's default) has no cost configured in a `GET /config/providers` answer; "" when it has.
std::string MaxCostProblem(const boost::json::value& providers, const std::string& model);

/// Asks the server, for the project's directory, whether the settings' model and agent exist.
/// kInvalidParams naming what is unknown, or kServerUnavailable when the server cannot answer.
/// Nothing is asked when neither is set.
boost::asio::awaitable<Status> CheckModelAndAgent(OpencodeClient& opencode, const std::string& project_root,
                                                  const RunSettings& settings);

/// For a run with max_cost: MaxCostProblem asked of the server; "" when there is none or the
/// server cannot say (the budget is then kept, and counts whatever cost opencode reports).
boost::asio::awaitable<std::string> CheckMaxCost(OpencodeClient& opencode, const std::string& project_root,
                                                 const RunSettings& settings);

/// Why the task's prompt template cannot be sent: the prompt.md that the lookup finds first is a
/// directory, unreadable, or empty (whitespace only). "" when it is fine or the built-in default
/// is used. Without this an empty prompt was sent again and again.
std::string PromptProblem(const Task& task);

/// run.stall_timeout for an iteration: ralphd.conf, then the task's ralph.ini as it is now (a
/// broken ralph.ini keeps the config's value; the run's other settings were fixed at its start).
Millis StallTimeout(const RunSettings& config, const Task& task);

/// Why an iteration that never started, or never went idle after `session_error`, was ended.
std::string StallMessage(const std::string& session_error, Millis stall_timeout);

}  // namespace ralph
