// ralph run | status | show | logs | stop | tasks
#include "client/commands.h"
#include "client/format.h"

#include <iostream>

namespace ralph {

namespace json = boost::json;
namespace po = boost::program_options;

namespace {


std::string Positional(const po::variables_map& vm, const char* what)
{
    if (!vm.count("ref")) throw UsageError(std::string("missing ") + what);
    return vm["ref"].as<std::string>();
}

std::string Iter(const json::value& run) { return Field(run, "iteration") + "/" + Field(run, "max_iterations"); }

std::string Duration(const json::value& run)
{
    long long start = run.at("started_at").as_int64();
    long long end = run.at("ended_at").is_int64() ? run.at("ended_at").as_int64()
                                                  : std::chrono::duration_cast<std::chrono::milliseconds>(
                                                        std::chrono::system_clock::now().time_since_epoch())
                                                        .count();
    return HumanDuration(end - start);
}

std::string FormatCost(const json::value& run)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "$%.4f", run.at("cost").is_number() ? run.at("cost").to_number<double>() : 0.0);
    return buf;
}

std::string ServerColumn(const json::value& run)
{
    // Only a live address: the run is running and the server healthy now.
    std::string url = Field(run, "server_url");
    if (url == "-") return "-";
    auto scheme = url.find("://");
    return scheme == std::string::npos ? url : url.substr(scheme + 3);
}

int Run(Client& client, const std::vector<std::string>& args)
{
    po::options_description o;
    o.add_options()("ref", po::value<std::string>())("max-iterations,n", po::value<int>())(
        "model", po::value<std::string>())("agent", po::value<std::string>())("promise", po::value<std::string>())(
        "iteration-timeout", po::value<std::string>())("follow,f", po::bool_switch());
    auto vm = ParseCommandArgs(args, o, "ref");
    json::object params{{"task", Positional(vm, "task")}, {"cwd", client.cwd}};
    if (vm.count("max-iterations")) params["max_iterations"] = vm["max-iterations"].as<int>();
    if (vm.count("model")) params["model"] = vm["model"].as<std::string>();
    if (vm.count("agent")) params["agent"] = vm["agent"].as<std::string>();
    if (vm.count("promise")) params["promise"] = vm["promise"].as<std::string>();
    if (vm.count("iteration-timeout")) params["iteration_timeout"] = vm["iteration-timeout"].as<std::string>();
    json::object run = client.Call("run.start", params).as_object();
    if (run.contains("error")) {
        if (client.json_output) PrintJson(run);
        std::cerr << "ralph: run " << Field(run, "id") << " of " << Field(run, "task")
                  << " failed at once (task_invalid): " << Field(run, "error") << "\n";
        return kExitDaemonError;
    }
    if (!vm["follow"].as<bool>()) {
        if (client.json_output) PrintJson(run);
        else
            std::cout << "run " << Field(run, "id") << " started: " << Field(run, "task") << " (" << Field(run, "task_dir")
                      << "), up to " << Field(run, "max_iterations") << " iterations\n"
                      << "follow it with: ralph logs " << Field(run, "id") << " -f\n";
        return kExitOk;
    }
    if (!client.json_output) std::cout << "run " << Field(run, "id") << ": " << Field(run, "task_dir") << "\n";
    json::object final_run = FollowRun(client, run.at("id"), 0, !client.json_output);
    if (client.json_output) PrintJson(final_run);
    return ExitCodeForRun(final_run);
}

int Status(Client& client, const std::vector<std::string>& args)
{
    po::options_description o;
    o.add_options()("ref", po::value<std::string>())("all,a", po::bool_switch());
    auto vm = ParseCommandArgs(args, o, "ref");
    json::object params{{"all", vm["all"].as<bool>()}, {"cwd", client.cwd}};
    json::value result;
    if (vm.count("ref")) {
        json::value ref = RunRef(vm["ref"].as<std::string>());
        if (ref.is_int64()) {
            json::object run = client.Call("run.get", json::object{{"run", ref}, {"cwd", client.cwd}}).as_object();
            run.erase("iterations");
            json::object listing = client.Call("run.list", json::object{{"task", run.at("task_dir")}, {"cwd", client.cwd}}).as_object();
            listing["runs"] = json::array{run};
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
        std::vector<std::vector<std::string>> rows;
        for (const json::value& r : runs)
            rows.push_back({Field(r, "id"), Field(r, "task"), Field(r, "status"), Iter(r), ServerColumn(r),
                            HumanTime(r.at("started_at").as_int64()), Duration(r), Field(r, "reason")});
        PrintTable({"RUN", "TASK", "STATUS", "ITER", "SERVER", "STARTED", "DURATION", "REASON"}, rows);
    }
    for (const json::value& u : result.at("untracked_servers").as_array())
        std::cout << "opencode server not managed by ralph: pid " << Field(u, "pid") << ", port " << Field(u, "port") << "\n";
    return kExitOk;
}

int Show(Client& client, const std::vector<std::string>& args)
{
    po::options_description o;
    o.add_options()("ref", po::value<std::string>());
    auto vm = ParseCommandArgs(args, o, "ref");
    json::value run = client.Call("run.get", json::object{{"run", RunRef(Positional(vm, "task or run"))}, {"cwd", client.cwd}});
    if (client.json_output) {
        PrintJson(run);
        return kExitOk;
    }
    std::string status = Field(run, "status");
    if (Field(run, "reason") != "-") status += " (" + Field(run, "reason") + ")";
    std::cout << "run " << Field(run, "id") << ": " << Field(run, "task") << ", " << status << "\n"
              << "  task:       " << Field(run, "task_dir") << "\n"
              << "  project:    " << Field(run, "project") << "\n"
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
                            Field(it.at("tokens"), "input") + "/" + Field(it.at("tokens"), "output"), error});
        }
        PrintTable({"ITER", "OUTCOME", "SESSION", "STARTED", "DURATION", "TOKENS", "ERROR"}, rows);
    }
    return kExitOk;
}

int Logs(Client& client, const std::vector<std::string>& args)
{
    po::options_description o;
    o.add_options()("ref", po::value<std::string>())("follow,f", po::bool_switch())("iteration", po::value<int>())(
        "verbose,v", po::bool_switch());
    auto vm = ParseCommandArgs(args, o, "ref");
    bool verbose = vm["verbose"].as<bool>();
    json::value ref = RunRef(Positional(vm, "task or run"));
    json::object params{{"run", ref}, {"cwd", client.cwd}};
    if (vm.count("iteration")) params["iteration"] = vm["iteration"].as<int>();
    if (vm["follow"].as<bool>() && !vm.count("iteration")) {
        json::object run = client.Call("run.get", params).as_object();
        json::object final_run = FollowRun(client, run.at("id"), 0, !client.json_output, verbose);
        if (client.json_output) PrintJson(final_run);
        return kExitOk;
    }
    json::value result = client.Call("run.events", params);
    if (client.json_output) {
        PrintJson(result);
        return kExitOk;
    }
    for (const json::value& e : result.at("events").as_array()) std::cout << EventLine(e.as_object(), verbose) << "\n";
    return kExitOk;
}

int Stop(Client& client, const std::vector<std::string>& args)
{
    po::options_description o;
    o.add_options()("ref", po::value<std::string>())("now", po::bool_switch());
    auto vm = ParseCommandArgs(args, o, "ref");
    bool now = vm["now"].as<bool>();
    json::value run = client.Call("run.stop", json::object{{"run", RunRef(Positional(vm, "task or run"))},
                                                           {"now", now}, {"cwd", client.cwd}});
    if (client.json_output) {
        PrintJson(run);
        return kExitOk;
    }
    if (!run.at("stopping").as_bool()) std::cout << Field(run, "message") << "\n";
    else if (now) std::cout << "run " << Field(run, "id") << ": aborting iteration " << Field(run, "iteration") << " now\n";
    else std::cout << "run " << Field(run, "id") << " stops after iteration " << Field(run, "iteration") << "\n";
    return kExitOk;
}

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
        {"run", "<task> [-n N] [--model P/M] [--agent A] [--promise TEXT] [--iteration-timeout DUR] [-f]",
         "start a run of a task (-f: follow it; exit 0 completed, 4 stopped, 5 failed)", Run},
        {"status", "[<task or run>] [--all]", "the server, then running runs and the latest 20 (--all: every run)", Status},
        {"show", "<task or run>", "one run and its iterations", Show},
        {"logs", "<task or run> [-f] [--iteration N] [-v|--verbose]",
         "what the agent did: iterations, text, tool calls and their results (-v: whole output), errors", Logs},
        {"stop", "<task or run> [--now]", "stop after the current iteration (--now: abort it)", Stop},
        {"tasks", "", "the tasks of the current project with their latest run", Tasks},
    };
    return commands;
}

}  // namespace ralph
