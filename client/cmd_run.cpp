// ralph run | status | show | logs | stop | tasks
#include "client/commands.h"
#include "client/follow.h"
#include "client/format.h"
#include "common/duration.h"
#include "common/text.h"

#include <iostream>
#include <set>

namespace ralph {

namespace json = boost::json;
namespace po = boost::program_options;

namespace {

/// "1 iteration", "10 iterations": the run's limit.
std::string Iterations(const json::value& run)
{
    std::string n = Field(run, "max_iterations");
    return n + (n == "1" ? " iteration" : " iterations");
}

/// A server that is not up yet takes seconds to start before the first iteration: say so, so
/// that `ralph run -f` is not silent meanwhile.
void SayWhenTheServerMustStart(Client& client)
{
    std::string state = Field(client.Call("server.status"), "state");
    if (state == "stopped" || state == "starting" || state == "backoff")
        std::cout << "starting the opencode server (" << state << "); the first iteration begins when it is ready"
                  << std::endl;
}

/// "running", "running (waiting until 14:05)" while it waits out a rate limit (SPEC §8), or
/// "running (pausing)" between `ralph pause` and the pause.
std::string StatusText(const json::value& run)
{
    std::string status = Field(run, "status");
    if (const json::value* w = run.as_object().if_contains("waiting_until"); w && w->is_int64())
        status += " (waiting until " + FormatLocalTime(w->as_int64(), "%H:%M") + ")";
    else if (const json::value* p = run.as_object().if_contains("pause_requested"); p && p->is_bool() && p->as_bool())
        status += " (pausing)";
    return status;
}

std::string Iter(const json::value& run) { return Field(run, "iteration") + "/" + Field(run, "max_iterations"); }

std::string Duration(const json::value& run)
{
    long long start = run.at("started_at").as_int64();
    long long end = run.at("ended_at").is_int64() ? run.at("ended_at").as_int64() : NowMillis();
    return HumanDuration(end - start);
}

/// "2/5" of a prd.json's stories; "-" without one.
std::string Stories(const json::value& run)
{
    if (Field(run, "stories_total") == "-") return "-";
    return Field(run, "stories_passed") + "/" + Field(run, "stories_total");
}

/// The run's budgets, "max_cost $0.50, max_time 2h", or "none".
std::string Budget(const json::value& run)
{
    const json::value* budget = run.as_object().if_contains("budget");
    if (!budget || !budget->is_object()) return "none";
    std::string out;
    auto add = [&out](const std::string& text) { out += (out.empty() ? "" : ", ") + text; };
    if (const json::value* c = budget->as_object().if_contains("max_cost"); c && c->is_number()) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "$%.2f", c->to_number<double>());
        add(std::string("max_cost ") + buf);
    }
    if (Field(*budget, "max_tokens") != "-") add("max_tokens " + Field(*budget, "max_tokens"));
    if (const json::value* t = budget->as_object().if_contains("max_time"); t && t->is_int64())
        add("max_time " + HumanDuration(t->as_int64()));
    return out.empty() ? "none" : out;
}

std::string FormatCost(const json::value& run)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "$%.4f", run.at("cost").is_number() ? run.at("cost").to_number<double>() : 0.0);
    return buf;
}

/// A project path with the home directory written "~".
std::string HomeRelative(const std::string& path)
{
    const char* home = std::getenv("HOME");
    std::string prefix = home && *home ? std::string(home) + "/" : std::string();
    return !prefix.empty() && path.rfind(prefix, 0) == 0 ? "~/" + path.substr(prefix.size()) : path;
}

std::string ServerColumn(const json::value& run)
{
    // Only a live address: the run is running and the server healthy now.
    std::string url = Field(run, "server_url");
    if (url == "-") return "-";
    auto scheme = url.find("://");
    return scheme == std::string::npos ? url : url.substr(scheme + 3);
}

int ReportStart(Client& client, json::object run);

int Run(Client& client, const std::vector<std::string>& args)
{
    CommandArgs vm(*FindCommand("run"), args, "ref", 1);
    json::object params{{"task", Positional(vm, "task")}, {"cwd", client.cwd}};
    if (vm.Has("max-iterations")) params["max_iterations"] = vm.Int("max-iterations", 1, 1000000);
    if (vm.Switch("worktree") && vm.Switch("no-worktree")) throw UsageError("--worktree and --no-worktree exclude each other");
    if (vm.Switch("worktree")) params["worktree"] = "always";
    if (vm.Switch("no-worktree")) params["worktree"] = "never";
    if (vm.Has("model")) params["model"] = vm.Text("model");
    if (vm.Has("agent")) params["agent"] = vm.Text("agent");
    if (vm.Has("promise")) params["promise"] = vm.Text("promise");
    if (vm.Has("iteration-timeout")) params["iteration_timeout"] = vm.Duration("iteration-timeout");
    if (vm.Has("max-cost")) params["max_cost"] = vm.Usd("max-cost");
    if (vm.Has("max-tokens")) params["max_tokens"] = vm.Int("max-tokens", 0, 1000000000000LL);
    if (vm.Has("max-time")) params["max_time"] = vm.Duration("max-time");
    if (vm.Has("verify")) params["verify"] = vm.Text("verify");
    bool follow = vm.Switch("follow");
    if (follow && !client.json_output) SayWhenTheServerMustStart(client);
    json::object run = client.Call("run.start", params).as_object();
    const int64_t id = run.at("id").as_int64();
    if (!client.json_output && run.contains("warning")) std::cerr << "ralph: warning: " << Field(run, "warning") << "\n";
    if (follow) {
        if (!client.json_output) std::cout << "run " << id << ": " << Field(run, "task_dir") << "\n";
        FollowOptions options;
        options.print_lines = !client.json_output;
        options.print_json = client.json_output;
        return ExitCodeForFollow(FollowRun(client, id, options));
    }
    return ReportStart(client, std::move(run));
}

/// `ralph run` without -f. The daemon answers as soon as the run exists, and a run that cannot
/// go on ends moments later (no opencode, a broken or finished prd.json): look until its first
/// iteration starts, so that "started" is said only of a run that is going, and a run that
/// already ended says how, with its exit code (SPEC §11).
int ReportStart(Client& client, json::object run)
{
    const int64_t id = run.at("id").as_int64();
    if (Field(run, "status") == "queued") {
        // It waits for a place ([daemon] max_running): true to say now, and nothing to wait for.
        if (client.json_output) PrintJson(run);
        else
            std::cout << "run " << id << " queued: " << Field(run, "task") << " (" << Field(run, "task_dir")
                      << "); it starts when a running run ends or pauses ([daemon] max_running)\n"
                      << "follow it with: ralph logs " << id << " -f\n";
        return kExitOk;
    }
    std::string end_message;
    FollowOptions look;
    look.stop_at = [&](const json::object& event) {
        std::string kind = Field(event, "kind");
        if (kind == "run.end" && event.contains("data")) end_message = Field(event.at("data"), "message");
        return kind == "iteration.start";
    };
    look.give_up_after = std::chrono::seconds(30);  // a cold opencode server can take a while
    FollowResult seen = FollowRun(client, id, look);
    if (seen.end == FollowResult::End::RunEnded) run = std::move(seen.run);
    else if (seen.end == FollowResult::End::StoppedEarly) {
        run = client.Call("run.get", json::object{{"run", id}, {"cwd", client.cwd}}).as_object();
        run.erase("iterations");
    }
    bool ended = Field(run, "status") == "completed" || Field(run, "status") == "stopped" || Field(run, "status") == "failed";
    if (client.json_output) PrintJson(run);
    if (!ended) {
        if (!client.json_output)
            std::cout << "run " << id << " started: " << Field(run, "task") << " (" << Field(run, "task_dir")
                      << "), up to " << Iterations(run)
                      << (Field(run, "iteration") == "0" ? "; its first iteration has not begun yet" : "") << "\n"
                      << "follow it with: ralph logs " << id << " -f\n";
        return kExitOk;
    }
    int code = ExitCodeForRun(run);
    if (!client.json_output) {
        std::ostream& out = code == kExitOk ? std::cout : std::cerr;
        out << (code == kExitOk ? "" : "ralph: ") << "run " << id << " of " << Field(run, "task") << " ended at once: "
            << Field(run, "status") << " (" << Field(run, "reason") << ")"
            << (end_message.empty() || end_message == "-" ? "" : ": " + end_message) << "\n";
    }
    return code;
}

int Status(Client& client, const std::vector<std::string>& args)
{
    CommandArgs vm(*FindCommand("status"), args, "ref", 1);
    json::object params{{"all", vm.Switch("all")}, {"cwd", client.cwd}};
    json::value result;
    if (vm.Has("ref")) {
        json::value ref = RunRef(vm.Text("ref"));
        if (ref.is_int64()) {
            json::object run = client.Call("run.get", json::object{{"run", ref}, {"cwd", client.cwd}}).as_object();
            run.erase("iterations");
            json::object listing = client.Call("run.list", json::object{{"task", run.at("task_dir")}, {"cwd", client.cwd}}).as_object();
            listing["runs"] = json::array{run};
            listing["older_runs"] = 0;
            result = listing;
        } else {
            params["task"] = ref;
            result = client.Call("run.list", params);
        }
    } else {
        result = client.Call("run.list", params);
    }
    if (client.json_output) {
        PrintJson(result);
        return kExitOk;
    }
    std::cout << ServerLine(result.at("server").as_object()) << "\n";
    const json::array& runs = result.at("runs").as_array();
    if (runs.empty()) {
        std::cout << "no runs yet; start one with: ralph run <task>\n";
    } else {
        // Two tasks named `docs` in two projects look alike: name the project when there are several.
        std::set<std::string> projects;
        for (const json::value& r : runs) projects.insert(Field(r, "project"));
        bool project_column = projects.size() > 1;
        std::vector<std::vector<std::string>> rows;
        for (const json::value& r : runs) {
            rows.push_back({Field(r, "id"), Field(r, "task"), StatusText(r), Iter(r), Stories(r), FormatCost(r),
                            ServerColumn(r), HumanTime(r.at("started_at").as_int64()), Duration(r), Field(r, "reason")});
            if (project_column) rows.back().insert(rows.back().begin() + 1, HomeRelative(Field(r, "project")));
        }
        std::vector<std::string> headers = {"RUN", "TASK", "STATUS", "ITER", "STORIES", "COST", "SERVER", "STARTED", "DURATION", "REASON"};
        if (project_column) headers.insert(headers.begin() + 1, "PROJECT");
        PrintTable(headers, rows);
    }
    if (const json::value* older = result.as_object().if_contains("older_runs"); older && older->is_int64() && older->as_int64() > 0)
        std::cout << older->as_int64() << " older run" << (older->as_int64() == 1 ? "" : "s")
                  << " not shown; 'ralph status --all' lists every run\n";
    if (std::size_t untracked = result.at("untracked_servers").as_array().size())
        std::cout << untracked << " opencode server" << (untracked == 1 ? "" : "s")
                  << " not managed by ralph; 'ralph server status' lists them\n";
    return kExitOk;
}

int Show(Client& client, const std::vector<std::string>& args)
{
    CommandArgs vm(*FindCommand("show"), args, "ref", 1);
    json::value run = client.Call("run.get", json::object{{"run", RunRef(Positional(vm, "task or run"))}, {"cwd", client.cwd}});
    if (client.json_output) {
        PrintJson(run);
        return kExitOk;
    }
    std::string status = Field(run, "status");
    if (Field(run, "reason") != "-") status += " (" + Field(run, "reason") + ")";
    if (Field(run, "reason_detail") != "-") status += ": " + Printable(Field(run, "reason_detail"));
    std::cout << "run " << Field(run, "id") << ": " << Printable(Field(run, "task")) << ", " << status << "\n"
              << "  task:       " << Printable(Field(run, "task_dir")) << "\n"
              << "  project:    " << Printable(Field(run, "project")) << "\n"
              << "  iteration:  " << Iter(run) << "\n"
              << "  model:      " << Field(run, "model") << (Field(run, "agent") != "-" ? ", agent " + Field(run, "agent") : "") << "\n"
              << "  started:    " << HumanTime(run.at("started_at").as_int64()) << " (" << Duration(run) << ")\n"
              << "  session:    " << Field(run, "session_id") << "\n"
              << "  server:     " << (Field(run, "server_url") != "-" ? Field(run, "server_url") + " (live)"
                                      : Field(run, "last_port") != "-" ? "- (last port " + Field(run, "last_port") + ")"
                                                                       : std::string("-"))
              << "\n"
              << "  tokens:     " << Field(run.at("tokens"), "input") << " in, " << Field(run.at("tokens"), "output")
              << " out; cost " << FormatCost(run) << "\n"
              << "  budget:     " << Budget(run) << "\n"
              << (Field(run, "stories_total") != "-" ? "  stories:    " + Stories(run) + " pass\n" : std::string())
              << (Field(run, "verify") != "-" ? "  verify:     " + Printable(Field(run, "verify")) + "\n" : std::string())
              << (Field(run, "worktree") != "-"
                      ? "  worktree:   " + Printable(Field(run, "worktree")) + "\n  branch:     " + Field(run, "branch") +
                            " (to merge it: git -C " + Printable(Field(run, "project")) + " merge " + Field(run, "branch") + ")\n"
                      : std::string())
              << (Field(run, "base") != "-" ? "  base:       " + Field(run, "base").substr(0, 12) +
                                                  " (ralph diff " + Field(run, "id") + " shows what the run changed)\n"
                                            : std::string())
              << LegacyLines(run);
    const json::array& its = run.at("iterations").as_array();
    if (!its.empty()) {
        std::cout << "\n";
        std::vector<std::vector<std::string>> rows;
        for (const json::value& it : its) {
            long long start = it.at("started_at").as_int64();
            std::string dur = it.at("ended_at").is_int64() ? HumanDuration(it.at("ended_at").as_int64() - start) : "-";
            std::string error = Field(it, "error");
            if (error.size() > 60) error = error.substr(0, 57) + "...";
            rows.push_back({Field(it, "n"), Field(it, "outcome") == "-" ? "running" : Field(it, "outcome"),
                            Field(it, "session_id"), HumanTime(start), dur,
                            Field(it.at("tokens"), "input") + "/" + Field(it.at("tokens"), "output"), Changes(it),
                            Field(it, "verify"), error});
        }
        PrintTable({"ITER", "OUTCOME", "SESSION", "STARTED", "DURATION", "TOKENS", "CHANGES", "VERIFY", "ERROR"}, rows);
    }
    return kExitOk;
}

int Logs(Client& client, const std::vector<std::string>& args)
{
    CommandArgs vm(*FindCommand("logs"), args, "ref", 1);
    json::value ref = RunRef(Positional(vm, "task or run"));
    json::object params{{"run", ref}, {"cwd", client.cwd}};
    if (vm.Has("iteration")) params["iteration"] = vm.Int("iteration", 1, 1000000);
    if (vm.Switch("follow") && !vm.Has("iteration")) {
        json::object run = client.Call("run.get", params).as_object();
        FollowOptions follow;
        follow.print_lines = !client.json_output;
        follow.print_json = client.json_output;
        follow.verbose = vm.Switch("verbose");
        return ExitCodeForFollow(FollowRun(client, run.at("id").as_int64(), follow));
    }
    json::value result = client.Call("run.events", params);
    if (client.json_output) {
        PrintJson(result);
        return kExitOk;
    }
    for (const json::value& e : result.at("events").as_array()) std::cout << EventLine(e.as_object(), vm.Switch("verbose")) << "\n";
    return kExitOk;
}

int Stop(Client& client, const std::vector<std::string>& args)
{
    CommandArgs vm(*FindCommand("stop"), args, "ref", 1);
    bool now = vm.Switch("now");
    json::value run = client.Call("run.stop", json::object{{"run", RunRef(Positional(vm, "task or run"))},
                                                           {"now", now}, {"cwd", client.cwd}});
    if (client.json_output) {
        PrintJson(run);
        return kExitOk;
    }
    if (!run.at("stopping").as_bool() || Field(run, "status") == "stopped") std::cout << Field(run, "message") << "\n";
    else if (now) std::cout << "run " << Field(run, "id") << ": aborting iteration " << Field(run, "iteration") << " now\n";
    else std::cout << "run " << Field(run, "id") << " stops after iteration " << Field(run, "iteration") << "\n";
    return kExitOk;
}

/// ralph pause and ralph resume: what changed, or why nothing did (exit 0 either way: the run is
/// in the state asked for, or says why not).
int Control(Client& client, const char* command, const std::vector<std::string>& args)
{
    CommandArgs vm(*FindCommand(command), args, "ref", 1);
    json::object params{{"run", RunRef(Positional(vm, "task or run"))}, {"cwd", client.cwd}};
    if (std::string(command) == "pause") params["now"] = vm.Switch("now");
    json::value run = client.Call(std::string("run.") + command, params);
    if (client.json_output) PrintJson(run);
    else std::cout << Field(run, "message") << "\n";
    return kExitOk;
}

int Pause(Client& client, const std::vector<std::string>& args) { return Control(client, "pause", args); }
int Resume(Client& client, const std::vector<std::string>& args) { return Control(client, "resume", args); }

int Tasks(Client& client, const std::vector<std::string>& args)
{
    ParseCommandArgs(args, po::options_description());
    json::value result = client.Call("task.list", json::object{{"cwd", client.cwd}});
    if (client.json_output) {
        PrintJson(result);
        return kExitOk;
    }
    if (result.at("project").is_null()) {
        std::cout << client.cwd << " is not in a git repository or a project with a tasks/ directory\n";
        return kExitOk;
    }
    const json::array& tasks = result.at("tasks").as_array();
    if (tasks.empty()) {
        std::cout << "no tasks in " << Field(result, "project") << "/tasks (a task is tasks/<name>/ with prompt.md or prd.json)\n";
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json::value& t : tasks) {
        const json::value& run = t.at("latest_run");
        if (run.is_null()) rows.push_back({Field(t, "name"), "-", "-", "-", "-"});
        else
            rows.push_back({Field(t, "name"), Field(run, "id"),
                            Field(run, "status") + (Field(run, "reason") != "-" ? " (" + Field(run, "reason") + ")" : ""),
                            Iter(run), HumanTime(run.at("started_at").as_int64())});
    }
    PrintTable({"TASK", "RUN", "STATUS", "ITER", "STARTED"}, rows);
    return kExitOk;
}

}  // namespace

const std::vector<Command>& RunCommands()
{
    static const std::vector<Command> commands = {
        {"run", "<task> [-n N] [--model P/M] [--agent A] [--promise TEXT] [--iteration-timeout DUR] [--max-cost USD] "
                "[--max-tokens N] [--max-time DUR] [--verify CMD] [--worktree|--no-worktree] [-f]",
         "start a run of a task (-f: follow it; exit 0 completed, 4 stopped, 5 failed)", Run, true,
         {{"max-iterations,n", "N", "stop after N iterations", "[run] max_iterations, else 10"},
          {"model", "P/M", "the model, provider/model", "[run] model, else opencode's default"},
          {"agent", "A", "the opencode agent", "[run] agent, else opencode's default"},
          {"promise", "TEXT", "the run completes when the agent prints <promise>TEXT</promise>",
           "[run] completion_promise, else COMPLETE"},
          {"iteration-timeout", "DUR", "abort an iteration after DUR (500ms, 90s, 15m, 2h, 1d, 1h30m; 90 = 90s)",
           "[run] iteration_timeout, else 30m"},
          {"max-cost", "USD", "stop the run (budget) once it has cost USD dollars; needs a model with a cost in opencode",
           "[run] max_cost, else none"},
          {"max-tokens", "N", "stop the run (budget) once it has used N tokens (input + output + reasoning)",
           "[run] max_tokens, else none"},
          {"max-time", "DUR", "stop the run (budget) once it has been running DUR", "[run] max_time, else none"},
          {"verify", "CMD", "a shell command that must exit 0 before the run may complete", "[run] verify, else none"},
          {"worktree", nullptr, "work in a git worktree of its own, on a branch ralph/<task>-<run>", "[run] worktree, else auto"},
          {"no-worktree", nullptr, "work in the project itself, even beside another run", "[run] worktree, else auto"},
          {"follow,f", nullptr, "follow the run's progress until it ends (otherwise print its id and return)", "off"}}},
        {"status", "[<task or run>] [--all]", "the server, then running runs and the latest 20 (--all: every run)", Status,
         true, {{"all,a", nullptr, "every run, not only the running ones and the latest 20", "off"}}},
        {"show", "<task or run>", "one run and its iterations", Show},
        {"logs", "<task or run> [-f] [--iteration N] [-v|--verbose]",
         "what the agent did: iterations, text, tool calls and their results (-v: whole output), errors", Logs, true,
         {{"follow,f", nullptr, "follow until the run ends", "off"},
          {"iteration", "N", "only iteration N", "every iteration"},
          {"verbose,v", nullptr, "a tool's whole output, not only its last lines", "off"}}},
        {"stop", "<task or run> [--now]", "stop after the current iteration (--now: abort it); a queued or paused run at once",
         Stop, true, {{"now", nullptr, "abort the current iteration instead of letting it finish", "off"}}},
        {"pause", "<task or run> [--now]", "pause after the current iteration (--now: abort it); a queued run at once",
         Pause, true, {{"now", nullptr, "abort the current iteration instead of letting it finish", "off"}}},
        {"resume", "<task or run>", "go on with a paused run (queued when max_running runs are running)", Resume, true},
        {"tasks", "", "the tasks of the current project with their latest run", Tasks},
    };
    return commands;
}

}  // namespace ralph
