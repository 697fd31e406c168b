#include "daemon/run_view.h"

#include "common/errors.h"
#include "daemon/task.h"

namespace ralph {

namespace json = boost::json;

json::object RunJson(const RunRow& r, const std::optional<ServerEndpoint>& live)
{
    json::object o{
        {"id", r.id},
        {"task", r.task_name},
        {"task_dir", r.task_dir},
        {"project", r.project_root},
        {"status", Name(r.status)},
        {"reason", r.reason == RunReason::kNone ? json::value(nullptr) : json::value(Name(r.reason))},
        {"iteration", r.iteration},
        {"max_iterations", r.max_iterations},
        {"server_url", r.status == RunStatus::kRunning && live ? json::value(live->url()) : json::value(nullptr)},
        {"last_port", r.last_port ? json::value(r.last_port) : json::value(nullptr)},
        {"session_id", r.session_id.empty() ? json::value(nullptr) : json::value(r.session_id)},
        {"started_at", r.started_at},
        {"ended_at", r.ended_at ? json::value(r.ended_at) : json::value(nullptr)},
        {"tokens", {{"input", r.tokens_in}, {"output", r.tokens_out}, {"reasoning", r.tokens_reasoning}}},
        {"cost", r.cost},
        {"model", r.model.empty() ? json::value(nullptr) : json::value(r.model)},
        {"agent", r.agent.empty() ? json::value(nullptr) : json::value(r.agent)},
        {"promise", r.promise},
        {"consecutive_failures", r.consecutive_failures},
        {"stop_requested", r.stop_requested.empty() ? json::value(nullptr) : json::value(r.stop_requested)},
        {"base", r.base.empty() ? json::value(nullptr) : json::value(r.base)},
        {"worktree", r.worktree.empty() ? json::value(nullptr) : json::value(r.worktree)},
        {"branch", r.branch.empty() ? json::value(nullptr) : json::value(r.branch)},
        {"reason_detail", r.reason_detail.empty() ? json::value(nullptr) : json::value(r.reason_detail)},
        {"queued_at", r.queued_at ? json::value(r.queued_at) : json::value(nullptr)},
        {"pause_requested", !r.pause_requested.empty()},
        {"waiting_until", r.waiting_until ? json::value(r.waiting_until) : json::value(nullptr)},
        {"stories_passed", r.stories_total < 0 ? json::value(nullptr) : json::value(r.stories_passed)},
        {"stories_total", r.stories_total < 0 ? json::value(nullptr) : json::value(r.stories_total)},
        {"budget", BudgetJson(r.budget)},
        {"verify", r.verify.empty() ? json::value(nullptr) : json::value(r.verify)},
    };
    // What the earlier Python ralph recorded of an imported loop; null for ralph's own runs.
    auto text_or_null = [](const std::string& s) { return s.empty() ? json::value(nullptr) : json::value(s); };
    o["legacy"] = r.legacy.empty() ? json::value(nullptr)
                                   : json::value(json::object{{"agent", text_or_null(r.legacy.agent)},
                                                              {"session_type", text_or_null(r.legacy.session_type)},
                                                              {"current_story", text_or_null(r.legacy.current_story)},
                                                              {"workspace_dir", text_or_null(r.legacy.workspace_dir)}});
    return o;
}

json::object BudgetJson(const RunBudget& b)
{
    return {{"max_cost", b.max_cost > 0 ? json::value(b.max_cost) : json::value(nullptr)},
            {"max_tokens", b.max_tokens > 0 ? json::value(b.max_tokens) : json::value(nullptr)},
            {"max_time", b.max_time_ms > 0 ? json::value(b.max_time_ms) : json::value(nullptr)}};
}

json::object IterationJson(const IterationRow& it)
{
    // What its snapshot recorded (SPEC §9); null without one (outside git).
    auto counted = [&](int v) { return it.checkpoint.empty() ? json::value(nullptr) : json::value(v); };
    return {
        {"n", it.n},
        {"session_id", it.session_id.empty() ? json::value(nullptr) : json::value(it.session_id)},
        {"outcome", it.outcome == OutcomeName::kNone ? json::value(nullptr) : json::value(Name(it.outcome))},
        {"started_at", it.started_at},
        {"ended_at", it.ended_at ? json::value(it.ended_at) : json::value(nullptr)},
        {"error", it.error.empty() ? json::value(nullptr) : json::value(it.error)},
        {"promise_seen", it.promise_seen},
        {"tokens", {{"input", it.tokens_in}, {"output", it.tokens_out}, {"reasoning", it.tokens_reasoning}}},
        {"cost", it.cost},
        {"port", it.port ? json::value(it.port) : json::value(nullptr)},
        {"checkpoint", it.checkpoint.empty() ? json::value(nullptr) : json::value(it.checkpoint)},
        {"files_changed", counted(it.files_changed)},
        {"insertions", counted(it.insertions)},
        {"deletions", counted(it.deletions)},
        {"commits", counted(it.commits)},
        {"verify", it.verify.empty() ? json::value(nullptr) : json::value(it.verify)},
        {"verify_exit", it.verify_exit ? json::value(*it.verify_exit) : json::value(nullptr)},
    };
}

Result<RunRow> ResolveRun(RunStore& store, const json::value& ref, const std::string& cwd)
{
    std::optional<int64_t> id;
    if (ref.is_int64()) id = ref.as_int64();
    else if (ref.is_uint64()) id = static_cast<int64_t>(ref.as_uint64());
    else if (ref.is_string()) {
        std::string s(ref.as_string());
        if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() < 18) id = std::stoll(s);
    }
    if (id) {
        auto run = store.GetRun(*id);
        if (!run) return Status(kNotFound, "no run " + std::to_string(*id) + "; `ralph status --all` lists every run");
        return *run;
    }
    if (!ref.is_string()) return Status(kInvalidParams, "invalid params: 'run' must be a run id or a task reference");
    Result<Task> task = ResolveTask(std::string(ref.as_string()), cwd);
    if (!task) return task.status();
    if (auto active = store.ActiveRunForTask(task->dir)) return *active;
    if (auto latest = store.LatestRunForTask(task->dir)) return *latest;
    return Status(kNotFound, "task " + task->name + " has no runs yet; start one with: ralph run " + task->name);
}

}  // namespace ralph
