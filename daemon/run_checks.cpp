#include "daemon/run_checks.h"

#include "common/errors.h"
#include "common/json_util.h"
#include "common/paths.h"

#include <fstream>
#include <sstream>
#include <sys/stat.h>

namespace ralph {

namespace json = boost::json;
namespace asio = boost::asio;

namespace {

std::string Listing(const std::vector<std::string>& names)
{
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? "(none)" : out;
}

std::string Unknown(const std::string& what, const std::string& name, const std::vector<std::string>& names,
                    const std::string& how_to_pick)
{
    std::string message = "unknown " + what + " '" + name + "'";
    if (auto close = ClosestName(name, names); !close.empty()) message += "; did you mean '" + close + "'?";
    message += " The opencode server has: " + Listing(names) + ". " + how_to_pick;
    return message;
}

}  // namespace

std::string ModelProblem(const json::value& providers, const std::string& model)
{
    std::vector<std::string> names;
    if (const json::value* list = At(providers, "providers"); list && list->is_array()) {
        for (const json::value& p : list->as_array()) {
            std::string provider = Str(At(p, "id"));
            if (const json::value* models = At(p, "models"); models && models->is_object())
                for (const auto& m : models->as_object()) names.push_back(provider + "/" + std::string(m.key()));
        }
    }
    for (const std::string& n : names)
        if (n == model) return "";
    return Unknown("model", model, names, "Pick one with --model PROVIDER/MODEL or run.model.");
}

std::string MaxCostProblem(const json::value& providers, const std::string& model)
{
    std::string provider_id, model_id;
    if (auto slash = model.find('/'); slash != std::string::npos) {
        provider_id = model.substr(0, slash);
        model_id = model.substr(slash + 1);
    }
    const json::value* list = At(providers, "providers");
    if (!list || !list->is_array() || list->as_array().empty()) return "";
    if (provider_id.empty()) {
        provider_id = Str(At(list->as_array()[0], "id"));
        model_id = Str(At(providers, "default", provider_id.c_str()));
    }
    for (const json::value& p : list->as_array()) {
        if (Str(At(p, "id")) != provider_id) continue;
        const json::value* m = At(p, "models", model_id.c_str());
        if (!m) return "";
        if (Real(At(*m, "cost", "input")) > 0 || Real(At(*m, "cost", "output")) > 0) return "";
        return "max_cost is set, but the model " + provider_id + "/" + model_id +
               " has no cost configured in opencode, so opencode reports $0 and this budget cannot stop the run; "
               "set the model's \"cost\" in opencode.json or use max_tokens";
    }
    return "";
}

std::string AgentProblem(const json::value& agents, const std::string& agent)
{
    std::vector<std::string> names;
    if (agents.is_array()) {
        for (const json::value& a : agents.as_array()) {
            std::string name = Str(At(a, "name"));
            if (name == agent) return "";
            if (const json::value* hidden = At(a, "hidden"); !(hidden && hidden->is_bool() && hidden->as_bool()))
                names.push_back(name);
        }
    }
    return Unknown("agent", agent, names, "Pick one with --agent NAME or run.agent.");
}

asio::awaitable<Status> CheckModelAndAgent(OpencodeClient& opencode, const std::string& project_root,
                                           const RunSettings& settings)
{
    auto unavailable = [](const std::string& path, const Status& why) {
        return Status(kServerUnavailable, "cannot check the run's model and agent: GET " + path +
                                              " on the opencode server failed: " + why.message());
    };
    if (!settings.model.empty()) {
        Result<json::value> providers = co_await opencode.Providers(project_root);
        if (!providers) co_return unavailable("/config/providers", providers.status());
        if (auto problem = ModelProblem(*providers, settings.model); !problem.empty())
            co_return Status(kInvalidParams, problem);
    }
    if (!settings.agent.empty()) {
        Result<json::value> agents = co_await opencode.Agents(project_root);
        if (!agents) co_return unavailable("/agent", agents.status());
        if (auto problem = AgentProblem(*agents, settings.agent); !problem.empty())
            co_return Status(kInvalidParams, problem);
    }
    co_return Status::Ok();
}

asio::awaitable<std::string> CheckMaxCost(OpencodeClient& opencode, const std::string& project_root,
                                          const RunSettings& settings)
{
    if (settings.max_cost <= 0) co_return "";
    Result<json::value> providers = co_await opencode.Providers(project_root);
    if (!providers) co_return "";
    co_return MaxCostProblem(*providers, settings.model);
}

std::string PromptProblem(const Task& task)
{
    // The same lookup order as LoadPromptTemplate; the first path that exists is the one used.
    for (const std::string& path :
         {task.dir + "/prompt.md", task.project_root + "/.ralph/prompt.md", UserConfigDir() + "/prompt.md"}) {
        struct stat st {};
        if (stat(path.c_str(), &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) return "the prompt " + path + " is a directory, not a file: make it a file with the prompt";
        std::ifstream in(path, std::ios::binary);
        std::stringstream text;
        // Copying an empty file's stream "fails" too, so only a non-empty one is copied.
        if (!in || (st.st_size > 0 && !(text << in.rdbuf())))
            return "the prompt " + path + " cannot be read: check its permissions";
        if (text.str().find_first_not_of(" \t\r\n") == std::string::npos)
            return "the prompt " + path + " is empty: write the prompt into it, or delete it to use the default";
        return "";
    }
    return "";
}

Millis StallTimeout(const RunSettings& config, const Task& task)
{
    try {
        return TaskRunSettings(config, task).stall_timeout;
    } catch (const ConfigError&) {
        return config.stall_timeout;
    }
}

std::string StallMessage(const std::string& session_error, Millis stall_timeout)
{
    if (!session_error.empty())
        return session_error + " (opencode reported this error and the session did not go idle within " +
               FormatDuration(stall_timeout) + ", run.stall_timeout)";
    return "opencode accepted the prompt but the iteration never started: no answer and no busy status within " +
           FormatDuration(stall_timeout) + " (run.stall_timeout)";
}

}  // namespace ralph
