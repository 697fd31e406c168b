// run.*: starting, listing, inspecting, stopping and following runs.
#include "common/duration.h"
#include "common/errors.h"
#include "common/json_util.h"
#include "common/jsonrpc.h"
#include "daemon/daemon.h"
#include "daemon/loop_engine.h"
#include "daemon/rpc_table.h"
#include "daemon/run_checks.h"
#include "daemon/run_states.h"
#include "daemon/run_view.h"
#include "daemon/server_supervisor.h"
#include "daemon/store.h"
#include "daemon/task.h"

#include <map>
#include <set>

namespace ralph {

namespace {

json::object EventJson(const RunEvent& e)
{
    boost::system::error_code ec;
    json::value data = json::parse(e.data, ec);
    return {{"id", e.id}, {"at", e.at}, {"iteration", e.iteration}, {"kind", e.kind},
            {"data", ec ? json::value(json::object{}) : data}};
}

/// A `state` event: what a live view shows of a run, from its JSON (the fields it has).
json::object StateEvent(const json::object& run)
{
    json::object state{{"kind", "state"}};
    for (const char* key : {"status", "reason", "iteration", "stories_passed", "stories_total", "tokens", "cost",
                            "waiting_until"})
        if (auto* v = run.if_contains(key)) state[key] = *v;
    return state;
}

asio::awaitable<json::value> Start(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    Task task = ValueOrThrow(ResolveTask(ParamString(params, "task"), ParamString(params, "cwd")));
    RunSettings settings;
    try {
        settings = TaskRunSettings(d.config().run, task);
    } catch (const ConfigError& e) {
        throw RpcError(kInvalidParams, std::string("task ") + task.name + ": " + e.what());
    }
    // The request's settings go through the same checks as ralphd.conf and ralph.ini.
    auto apply = [&settings](const char* param, const std::string& key, const std::string& value) {
        try {
            ApplyRunSetting(settings, key, value);
        } catch (const ConfigError& e) {
            throw RpcError(kInvalidParams, std::string("invalid params: '") + param + "': " + e.what());
        }
    };
    if (auto n = ParamInt(params, "max_iterations")) apply("max_iterations", "run.max_iterations", std::to_string(*n));
    if (auto model = ParamString(params, "model"); !model.empty()) apply("model", "run.model", model);
    if (auto agent = ParamString(params, "agent"); !agent.empty()) apply("agent", "run.agent", agent);
    if (auto promise = ParamString(params, "promise"); !promise.empty())
        apply("promise", "run.completion_promise", promise);
    // A duration is a string ("30m") or whole seconds, as in the config files.
    auto apply_duration = [&](const char* param, const std::string& key) {
        if (auto* t = params.if_contains(param); t && !t->is_null())
            apply(param, key, t->is_string() ? std::string(t->as_string()) : std::to_string(ParamInt(params, param).value_or(0)));
    };
    apply_duration("iteration_timeout", "run.iteration_timeout");
    if (auto worktree = ParamString(params, "worktree"); !worktree.empty()) apply("worktree", "run.worktree", worktree);
    if (auto* cost = params.if_contains("max_cost"); cost && cost->is_number())
        apply("max_cost", "run.max_cost", cost->to_number<double>() < 0 ? "-1" : json::serialize(*cost));
    if (auto n = ParamInt(params, "max_tokens")) apply("max_tokens", "run.max_tokens", std::to_string(*n));
    apply_duration("max_time", "run.max_time");
    if (auto* verify = params.if_contains("verify"); verify && verify->is_string())
        apply("verify", "run.verify", std::string(verify->as_string()));
    std::string cost_warning;
    if (!settings.model.empty() || !settings.agent.empty() || settings.max_cost > 0) {
        // A typo must not give a run that waits in vain (SPEC §8): ask the server first.
        ServerEndpoint server = ValueOrThrow(co_await d.supervisor().Ensure());
        std::unique_ptr<OpencodeClient> opencode = d.opencode_clients()(server);
        Status checked = co_await CheckModelAndAgent(*opencode, task.project_root, settings);
        ThrowIfError(checked);
        cost_warning = co_await CheckMaxCost(*opencode, task.project_root, settings);
    }
    std::string error;
    RunRow run = ValueOrThrow(d.loops().Start(task, settings, &error));
    if (!cost_warning.empty()) d.loops().Event(run.id, 0, "note", Obj("message", "warning: " + cost_warning));
    json::object out = RunJson(run, d.supervisor().Live());
    if (!error.empty()) out["error"] = error;
    if (!cost_warning.empty()) out["warning"] = cost_warning;
    co_return out;
}

asio::awaitable<json::value> List(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    std::string task_dir;
    if (auto ref = ParamString(params, "task"); !ref.empty()) task_dir = ValueOrThrow(ResolveTask(ref, ParamString(params, "cwd"))).dir;
    bool all = ParamBool(params, "all");
    auto live = d.supervisor().Live();
    json::array runs;
    for (const RunRow& r : d.store().ListRuns(task_dir, all ? 0 : 20)) runs.push_back(RunJson(r, live));
    int64_t older_runs = all ? 0 : std::max<int64_t>(0, d.store().CountRuns(task_dir) - static_cast<int64_t>(runs.size()));
    json::object server = d.supervisor().StatusJson();
    json::value untracked = json::array{};
    if (auto* u = server.if_contains("untracked_servers")) {
        untracked = *u;
        server.erase("untracked_servers");
    }
    co_return Obj("server", std::move(server), "runs", std::move(runs), "older_runs", older_runs, "untracked_servers",
                  untracked);
}

asio::awaitable<json::value> Get(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    RunRow run = ValueOrThrow(ResolveRun(d.store(), params.at("run"), ParamString(params, "cwd")));
    json::object out = RunJson(run, d.supervisor().Live());
    json::array iterations;
    for (const IterationRow& it : d.store().Iterations(run.id)) iterations.push_back(IterationJson(it));
    out["iterations"] = std::move(iterations);
    co_return out;
}

asio::awaitable<json::value> Stop(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    RunRow run = ValueOrThrow(ResolveRun(d.store(), params.at("run"), ParamString(params, "cwd")));
    bool now = ParamBool(params, "now");
    LoopEngine::ControlResult stopped = d.loops().Stop(run.id, now);
    RunRow after = *d.store().GetRun(run.id);
    json::object out = RunJson(after, d.supervisor().Live());
    out["stopping"] = stopped.changed;
    out["message"] = stopped.changed ? stopped.message
                                     : "run " + std::to_string(run.id) + " is not running (" + std::string(Name(after.status)) +
                                           (after.reason == RunReason::kNone ? "" : ", " + std::string(Name(after.reason))) +
                                           "); nothing changed";
    co_return out;
}

/// run.pause and run.resume: the control's result with the run as it is after it.
json::object ControlReply(Daemon& d, int64_t run_id, const LoopEngine::ControlResult& result)
{
    json::object out = RunJson(*d.store().GetRun(run_id), d.supervisor().Live());
    out["changed"] = result.changed;
    out["message"] = result.message;
    return out;
}

asio::awaitable<json::value> Pause(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    RunRow run = ValueOrThrow(ResolveRun(d.store(), params.at("run"), ParamString(params, "cwd")));
    co_return ControlReply(d, run.id, d.loops().Pause(run.id, ParamBool(params, "now")));
}

asio::awaitable<json::value> Resume(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    RunRow run = ValueOrThrow(ResolveRun(d.store(), params.at("run"), ParamString(params, "cwd")));
    co_return ControlReply(d, run.id, d.loops().Resume(run.id));
}

/// run.events without `run`: every run's events and state changes, as `run.event {run, event}`
/// notifications, until the caller goes or ralphd stops (SPEC §12, for `ralph top`).
asio::awaitable<json::value> FollowAllRuns(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    int64_t after = ParamInt(params, "after").value_or(d.store().LastEventId());
    std::map<int64_t, json::object> last_state;  // per run: the state last sent; dropped once it ended
    auto send_state = [&](const RunRow& run) -> asio::awaitable<void> {
        json::object state = StateEvent(RunJson(run, d.supervisor().Live()));
        json::object& last = last_state[run.id];
        if (state != last) {
            last = state;
            state["at"] = NowMillis();
            co_await ctx.notify(jsonrpc::MakeNotification("run.event", Obj("run", run.id, "event", std::move(state))));
        }
        if (!IsActive(run.status)) last_state.erase(run.id);
    };
    for (const RunRow& run : d.store().ActiveRuns()) co_await send_state(run);
    for (;;) {
        const uint64_t seen = d.loops().activity().count();
        std::set<int64_t> touched;
        for (;;) {
            auto page = d.store().EventsOfAllRuns(after, 500);
            for (const RunEvent& e : page) {
                after = e.id;
                touched.insert(e.run_id);
                co_await ctx.notify(jsonrpc::MakeNotification("run.event", Obj("run", e.run_id, "event", EventJson(e))));
            }
            if (page.size() < 500) break;
        }
        // A run's state changes with its events; runs still active are looked at again after a
        // quiet wait too, for what changes without an event.
        for (const auto& [id, state] : last_state) touched.insert(id);
        for (int64_t id : touched)
            if (auto run = d.store().GetRun(id)) co_await send_state(*run);
        if (d.shutting_down()) co_return Obj("last_id", after, "daemon_stopping", true);
        if (d.loops().activity().count() == seen) co_await d.loops().activity().WaitFor(std::chrono::seconds(30));
    }
}

asio::awaitable<json::value> Events(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    if (auto* ref = params.if_contains("run"); !ref || ref->is_null()) {
        if (params.contains("iteration")) throw RpcError(kInvalidParams, "invalid params: 'iteration' needs 'run'");
        co_return co_await FollowAllRuns(ctx, params);
    }
    RunRow run = ValueOrThrow(ResolveRun(d.store(), params.at("run"), ParamString(params, "cwd")));
    int64_t after = ParamInt(params, "after").value_or(0);
    auto iteration = ParamInt(params, "iteration");
    if (iteration && (*iteration < 1 || *iteration > run.iteration)) {
        std::string has = run.iteration == 0   ? "has no iterations yet"
                          : run.iteration == 1 ? "has only iteration 1"
                                               : "has iterations 1 to " + std::to_string(run.iteration);
        throw RpcError(kInvalidParams, "run " + std::to_string(run.id) + " " + has + "; there is no iteration " +
                                           std::to_string(*iteration));
    }
    bool follow = ParamBool(params, "follow");
    auto matches = [&](const RunEvent& e) { return !iteration || e.iteration == *iteration; };
    if (!follow) {
        json::array events;
        for (;;) {
            auto page = d.store().Events(run.id, after, 1000);
            for (const RunEvent& e : page) {
                after = e.id;
                if (matches(e)) events.push_back(EventJson(e));
            }
            if (page.size() < 1000) break;
        }
        co_return Obj("run", RunJson(*d.store().GetRun(run.id), d.supervisor().Live()), "events", std::move(events),
                      "last_id", after);
    }
    // Follow: stream every event as a run.event notification until the run has ended and its
    // last event is sent; a change of the run's state goes as a `state` event after the events
    // that led to it (SPEC §12).
    json::object last_state;
    for (;;) {
        const uint64_t seen = d.loops().activity().count();
        auto page = d.store().Events(run.id, after, 500);
        for (const RunEvent& e : page) {
            after = e.id;
            if (matches(e))
                co_await ctx.notify(jsonrpc::MakeNotification("run.event", Obj("run", run.id, "event", EventJson(e))));
        }
        if (!page.empty()) continue;
        RunRow now = *d.store().GetRun(run.id);
        if (json::object state = StateEvent(RunJson(now, d.supervisor().Live())); state != last_state) {
            last_state = state;
            state["at"] = NowMillis();
            co_await ctx.notify(jsonrpc::MakeNotification("run.event", Obj("run", run.id, "event", std::move(state))));
        }
        if (!IsActive(now.status) || d.shutting_down()) {
            co_return Obj("run", RunJson(now, d.supervisor().Live()), "last_id", after, "daemon_stopping",
                          d.shutting_down());
        }
        if (d.loops().activity().count() == seen) co_await d.loops().activity().WaitFor(run.id, std::chrono::seconds(30));
    }
}

}  // namespace

const std::vector<RpcMethod>& RunMethods()
{
    static const std::vector<RpcMethod> methods = {
        {{"run.start", "Starts a run of a task; refuses a second running run of the same task.",
          {{"task", ParamType::String, true, "", "task reference (docs/usage.md, Tasks)"},
           {"cwd", ParamType::String, true, "", "the caller's working directory (absolute)"},
           {"max_iterations", ParamType::Integer, false, "run.max_iterations", "iteration limit"},
           {"model", ParamType::String, false, "run.model", "provider/model"},
           {"agent", ParamType::String, false, "run.agent", "opencode agent"},
           {"promise", ParamType::String, false, "run.completion_promise", "the completion promise text"},
           {"iteration_timeout", ParamType::StringOrInteger, false, "run.iteration_timeout",
            "a duration (\"30m\") or seconds"},
           {"worktree", ParamType::String, false, "run.worktree",
            "auto, always or never: whether the run works in a git worktree of its own"},
           {"max_cost", ParamType::Number, false, "run.max_cost", "budget: USD the run may cost (0: none)"},
           {"max_tokens", ParamType::Integer, false, "run.max_tokens",
            "budget: tokens (input + output + reasoning) the run may use (0: none)"},
           {"max_time", ParamType::StringOrInteger, false, "run.max_time",
            "budget: time the run may spend running, a duration (\"2h\") or seconds (0: none)"},
           {"verify", ParamType::String, false, "run.verify",
            "a shell command that must exit 0 before a promise or a complete prd.json completes the run"}},
          "the run (as in `run.list`); a task that cannot run gives a `failed` run (`task_invalid`) with `error`. "
          "`warning` when `max_cost` cannot trip (the model has no cost configured). "
          "Errors: -32004 `TASK_NOT_FOUND`, -32005 `ALREADY_RUNNING` naming the running run, -32602 for a model or "
          "agent the server does not have (listing what it has; no run is made), -32010 when the server cannot "
          "be asked"},
         Start},
        {{"run.list", "The server and the runs: running ones and the latest 20, or every run.",
          {{"all", ParamType::Boolean, false, "false", "every run"},
           {"task", ParamType::String, false, "", "only this task's runs"},
           {"cwd", ParamType::String, false, "", "resolves `task`"}},
          "`{server, runs: [{id, task, task_dir, project, status, reason, iteration, max_iterations, server_url, "
          "last_port, session_id, started_at, ended_at, tokens, cost, ...}], older_runs, untracked_servers: [{pid, "
          "port}]}`; `older_runs` is how many more runs `all` would list; "
          "`server_url` is null unless the run is running and the server healthy; times are unix milliseconds"},
         List},
        {{"run.get", "One run and its iterations.",
          {{"run", ParamType::StringOrInteger, true, "", "run id, or task reference (its running, else latest run)"},
           {"cwd", ParamType::String, false, "", "resolves a task reference"}},
          "the run with `iterations: [{n, session_id, outcome, started_at, ended_at, error, promise_seen, tokens, "
          "cost, port}]`"},
         Get},
        {{"run.stop", "Stops a run after its current iteration, or at once; a queued or paused run is stopped at once; "
                      "a run that has ended is left unchanged.",
          {{"run", ParamType::StringOrInteger, true, "", "run id or task reference"},
           {"now", ParamType::Boolean, false, "false", "abort the current iteration"},
           {"cwd", ParamType::String, false, "", "resolves a task reference"}},
          "the run with `stopping` (false when it had ended) and `message`"},
         Stop},
        {{"run.pause", "Pauses a running run after its current iteration (`pause_requested` meanwhile), or at once; "
                       "pauses a queued run at once. A paused run stays paused across restarts of ralphd.",
          {{"run", ParamType::StringOrInteger, true, "", "run id or task reference"},
           {"now", ParamType::Boolean, false, "false", "abort the current iteration (outcome `aborted`)"},
           {"cwd", ParamType::String, false, "", "resolves a task reference"}},
          "the run with `changed` (false when it was paused already or has ended) and `message`"},
         Pause},
        {{"run.resume", "Goes on with a paused run (`queued` when `[daemon] max_running` runs are running), or "
                        "withdraws the pause asked of a running run.",
          {{"run", ParamType::StringOrInteger, true, "", "run id or task reference"},
           {"cwd", ParamType::String, false, "", "resolves a task reference"}},
          "the run with `changed` (false when it was not paused) and `message`"},
         Resume},
        {{"run.events", "A run's event log; with `follow`, `run.event` notifications until the run ends, then the response. "
                        "Without `run`: every run's events and state changes as notifications, until the caller goes "
                        "or ralphd stops (`follow` implied).",
          {{"run", ParamType::StringOrInteger, false, "", "run id or task reference; absent: every run"},
           {"after", ParamType::Integer, false, "0", "only events with a larger id (ids grow across runs); without "
                                                     "`run` the default is the latest event's id: only new events"},
           {"iteration", ParamType::Integer, false, "", "only this iteration's events"},
           {"follow", ParamType::Boolean, false, "false", "stream until the run ends"},
           {"cwd", ParamType::String, false, "", "resolves a task reference"}},
          "`{run, events: [{id, at, iteration, kind, data}], last_id}` (with follow: `{run, last_id}` after the "
          "notifications `{run, event}`); kinds: run.start, iteration.start, text, tool, note, error, iteration.end, run.end; "
          "with follow also `{kind: \"state\", at, status, reason, iteration, tokens, cost, ...}` (no id) when the run's "
          "state changes (without `run`: first for every active run). Without `run` the response comes only when "
          "ralphd stops: `{last_id, daemon_stopping}`. An `iteration` outside 1 to the run's current one: -32602 "
          "naming the range"},
         Events},
    };
    return methods;
}

}  // namespace ralph
