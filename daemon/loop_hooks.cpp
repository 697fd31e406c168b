// Hooks and the desktop notification (SPEC §10): `on_iteration_end` and `on_run_end` shell
// commands with the run's facts in their environment, run in the run's work tree with a deadline,
// their output in the run's log. They run beside the loop (a slow hook never holds a run up) and a
// failing or hanging one changes nothing in the run. Part of LoopEngine.
#include "common/json_util.h"
#include "common/log.h"
#include "common/text.h"
#include "daemon/child_command.h"
#include "daemon/loop_active_run.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>

extern char** environ;

namespace ralph {

namespace json = boost::json;
namespace asio = boost::asio;

namespace {

constexpr auto kHookTimeout = std::chrono::seconds(60);
constexpr int kHookOutputLines = 20;

std::string Usd(double cost)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", cost);
    return buf;
}

}  // namespace

RunSettings LoopEngine::SettingsNow(const RunRow& run) const
{
    try {
        return TaskRunSettings(run_defaults_, Task{run.task_name, run.task_dir, run.project_root});
    } catch (const std::exception&) {
        return run_defaults_;
    }
}

void LoopEngine::IterationEndHooks(const RunRow& run, const IterationRow& done)
{
    RunSettings settings = SettingsNow(run);
    if (settings.on_iteration_end.empty()) return;
    // The run as it is now (its session is this iteration's), and the iteration with its session.
    RunRow now = store_.GetRun(run.id).value_or(run);
    IterationRow it = done;
    if (it.session_id.empty()) it.session_id = now.session_id;
    SpawnHook("on_iteration_end", settings.on_iteration_end, now, &it);
}

void LoopEngine::RunEndHooks(int64_t run_id)
{
    std::optional<RunRow> run = store_.GetRun(run_id);
    if (!run) return;
    RunSettings settings = SettingsNow(*run);
    if (!settings.on_run_end.empty()) SpawnHook("on_run_end", settings.on_run_end, *run, nullptr);
    // A desktop notification only where there is a desktop to show it.
    const bool graphical = std::getenv("DISPLAY") || std::getenv("WAYLAND_DISPLAY");
    if (settings.notify == "desktop" && graphical) {
        const std::string status(Name(run->status)), reason(Name(run->reason));
        std::string title = "ralph: " + run->task_name + " " + status;
        std::string body = "run " + std::to_string(run->id) + " " + status + " (" + reason + ") after " +
                           std::to_string(run->iteration) + " iterations" +
                           (run->reason_detail.empty() ? "" : ": " + run->reason_detail);
        SpawnHook("notify", "notify-send -a ralph \"$RALPH_NOTIFY_TITLE\" \"$RALPH_NOTIFY_BODY\"", *run, nullptr,
                  {"RALPH_NOTIFY_TITLE=" + title, "RALPH_NOTIFY_BODY=" + body});
    }
}

std::vector<std::string> LoopEngine::ChildEnvironment(const RunRow& run, const IterationRow* iteration)
{
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
    const IterationRow none;
    const IterationRow& it = iteration ? *iteration : none;
    for (const auto& [key, value] : std::initializer_list<std::pair<const char*, std::string>>{
             {"RALPH_RUN_ID", std::to_string(run.id)},
             {"RALPH_TASK", run.task_name},
             {"RALPH_PROJECT", run.project_root},
             {"RALPH_WORKTREE", run.worktree},
             {"RALPH_BRANCH", run.branch},
             {"RALPH_STATUS", std::string(Name(run.status))},
             {"RALPH_REASON", std::string(Name(run.reason))},
             {"RALPH_ITERATION", std::to_string(iteration ? it.n : run.iteration)},
             {"RALPH_OUTCOME", std::string(Name(it.outcome))},
             {"RALPH_SESSION_ID", iteration ? it.session_id : run.session_id},
             {"RALPH_TOKENS", std::to_string(iteration ? it.tokens_in + it.tokens_out + it.tokens_reasoning
                                                       : run.tokens_in + run.tokens_out + run.tokens_reasoning)},
             {"RALPH_COST", Usd(iteration ? it.cost : run.cost)},
         })
        env.push_back(std::string(key) + "=" + value);
    return env;
}

void LoopEngine::SpawnHook(const std::string& which, const std::string& command, const RunRow& run,
                           const IterationRow* iteration, std::vector<std::string> extra_env)
{
    LaunchSpec spec;
    spec.program = "/bin/sh";
    spec.args = {"-c", "exec 2>&1\n" + command};
    spec.env = ChildEnvironment(run, iteration);
    spec.env.insert(spec.env.end(), extra_env.begin(), extra_env.end());
    spec.cwd = run.work_root();
    ++hooks_running_;
    asio::co_spawn(io_, RunHook(which, std::move(spec), run.id, iteration ? iteration->n : run.iteration), asio::detached);
}

asio::awaitable<void> LoopEngine::RunHook(std::string which, LaunchSpec spec, int64_t run_id, int n)
{
    // Its pid is known while it runs, so that Shutdown can end a hook that hangs.
    auto pid = std::make_shared<pid_t>(0);
    hook_pids_.insert(pid);
    struct Done {
        LoopEngine& engine;
        std::shared_ptr<pid_t> pid;
        ~Done()
        {
            engine.hook_pids_.erase(pid);
            --engine.hooks_running_;
            engine.activity_.Notify();
        }
    } done{*this, pid};
    Result<CommandOutput> ran = co_await RunChildCommand(git_.launcher(), std::move(spec), kHookTimeout, 1 << 20, pid.get());
    json::object note{{"hook", which}};
    if (!ran) {
        note["message"] = "hook " + which + " could not be started: " + ran.status().message();
    } else {
        std::string how = ran->timed_out ? "was killed after " + FormatDuration(kHookTimeout) : ran->exit.Describe();
        note["message"] = "hook " + which + " " + how;
        note["exit"] = !ran->timed_out && ran->exit.code >= 0 ? json::value(ran->exit.code) : json::value(nullptr);
        note["output"] = ToValidUtf8(LastLines(ran->out, kHookOutputLines));
    }
    Event(run_id, n, "note", std::move(note));
}

void LoopEngine::EndHooks()
{
    for (const std::shared_ptr<pid_t>& pid : hook_pids_)
        if (*pid > 0) git_.launcher().SignalGroup(*pid, SIGKILL);
}

}  // namespace ralph
