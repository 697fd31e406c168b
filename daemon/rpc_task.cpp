// task.*: resolving and listing tasks.
#include "common/json_util.h"
#include "daemon/daemon.h"
#include "daemon/rpc_table.h"
#include "daemon/run_view.h"
#include "daemon/server_supervisor.h"
#include "daemon/store.h"
#include "daemon/task.h"

namespace ralph {

namespace {

json::object TaskJson(const Task& t)
{
    return {{"name", t.name}, {"task_dir", t.dir}, {"project", t.project_root}};
}

asio::awaitable<json::value> Resolve(CallContext& ctx, const json::object& params)
{
    Task t = ValueOrThrow(ResolveTask(ParamString(params, "ref"), ParamString(params, "cwd")));
    json::object o = TaskJson(t);
    std::string source;
    LoadPromptTemplate(t, &source);
    o["prompt_source"] = source;
    co_return o;
}

asio::awaitable<json::value> List(CallContext& ctx, const json::object& params)
{
    std::string root;
    std::vector<Task> tasks = ListTasks(ParamString(params, "cwd"), &root);
    auto live = ctx.daemon.supervisor().Live();
    json::array out;
    for (const Task& t : tasks) {
        json::object o = TaskJson(t);
        auto latest = ctx.daemon.store().ActiveRunForTask(t.dir);
        if (!latest) latest = ctx.daemon.store().LatestRunForTask(t.dir);
        o["latest_run"] = latest ? json::value(RunJson(*latest, live)) : json::value(nullptr);
        out.push_back(std::move(o));
    }
    co_return Obj("project", root.empty() ? json::value(nullptr) : json::value(root), "tasks", std::move(out));
}

}  // namespace

const std::vector<RpcMethod>& TaskMethods()
{
    static const std::vector<RpcMethod> methods = {
        {{"task.resolve", "Resolves a task reference as `ralph run` would (see docs/usage.md, Tasks).",
          {{"ref", ParamType::String, true, "", "a task name, `tasks/<name>` or a directory path"},
           {"cwd", ParamType::String, true, "", "the caller's working directory (absolute)"}},
          "`{name, task_dir, project, prompt_source}`; error -32004 `TASK_NOT_FOUND` lists the tasks that exist"},
         Resolve},
        {{"task.list", "Lists the tasks of the project containing cwd, each with its latest run.",
          {{"cwd", ParamType::String, true, "", "a directory inside the project (absolute)"}},
          "`{project, tasks: [{name, task_dir, project, latest_run}]}`"},
         List},
    };
    return methods;
}

}  // namespace ralph
