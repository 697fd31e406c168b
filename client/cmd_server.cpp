// ralph server start|stop|restart|status
#include "client/commands.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace ralph {

namespace json = boost::json;
namespace po = boost::program_options;

namespace {

std::string Str(const json::object& o, const char* key)
{
    auto* v = o.if_contains(key);
    if (!v || v->is_null()) return "";
    if (v->is_string()) return std::string(v->as_string());
    return json::serialize(*v);
}

double Num(const json::object& o, const char* key)
{
    auto* v = o.if_contains(key);
    return v && v->is_number() ? v->to_number<double>() : -1;
}

void PrintUntracked(const json::object& o)
{
    auto* list = o.if_contains("untracked_servers");
    if (!list || !list->is_array() || list->as_array().empty()) return;
    std::cout << "opencode servers not managed by ralph:\n";
    for (const json::value& v : list->as_array()) {
        const json::object& u = v.as_object();
        std::string port = Str(u, "port");
        std::cout << "  pid " << Str(u, "pid") << "  port " << (port.empty() ? "?" : port) << "  (not managed by ralph)\n";
    }
}

/// The human form of a server.status object.
void PrintStatus(const json::object& o)
{
    std::string state = Str(o, "state");
    bool healthy = o.if_contains("healthy") && o.at("healthy").is_bool() && o.at("healthy").as_bool();
    std::cout << "server: " << state << " (" << Str(o, "mode") << ")";
    if (state == "running" || state == "external") std::cout << (healthy ? ", healthy" : ", NOT healthy");
    std::cout << "\n";
    auto field = [&](const char* label, const std::string& value) {
        if (!value.empty()) std::cout << "  " << label << value << "\n";
    };
    field("url:        ", Str(o, "url"));
    field("pid:        ", Str(o, "pid"));
    field("version:    ", Str(o, "version"));
    if (double up = Num(o, "uptime"); up >= 0) field("uptime:     ", HumanDuration(static_cast<long long>(up * 1000)));
    if (Str(o, "mode") == "managed") field("restarts:   ", Str(o, "restarts"));
    if (double memory = Num(o, "memory"); memory > 0) {
        char text[96];
        std::snprintf(text, sizeof text, "%.0f MB (peak %.0f MB; the server and its tool processes)", memory / (1 << 20),
                      std::max(memory, Num(o, "memory_peak")) / (1 << 20));
        field("memory:     ", text);
    }
    if (double next = Num(o, "next_restart_in"); next >= 0)
        field("restart in: ", HumanDuration(static_cast<long long>(next * 1000)));
    field("last error: ", Str(o, "last_error"));
    field("log:        ", Str(o, "log"));
    if (state == "fatal") std::cout << "  run `ralph server start` to try again\n";
}

int ServerStatus(Client& client, const std::vector<std::string>& args)
{
    ParseCommandArgs(args, po::options_description());
    json::value result = client.Call("server.status");
    if (client.json_output) {
        PrintJson(result);
        return kExitOk;
    }
    PrintStatus(result.as_object());
    PrintUntracked(result.as_object());
    return kExitOk;
}

int ServerStart(Client& client, const std::vector<std::string>& args)
{
    ParseCommandArgs(args, po::options_description());
    json::value result = client.Call("server.start");
    if (client.json_output) {
        PrintJson(result);
        return kExitOk;
    }
    const json::object& o = result.as_object();
    if (Str(o, "mode") == "external") {
        std::cout << "using the external opencode server at " << Str(o, "url") << " (not managed by ralph)\n";
        return kExitOk;
    }
    bool already = o.if_contains("already_running") && o.at("already_running").as_bool();
    std::cout << "opencode server " << (already ? "already running" : "running") << " at " << Str(o, "url") << " (pid "
              << Str(o, "pid") << ", version " << Str(o, "version") << ")\n";
    return kExitOk;
}

int ServerStop(Client& client, const std::vector<std::string>& args)
{
    ParseCommandArgs(args, po::options_description());
    if (!client.DaemonAnswers()) {
        // Nothing to stop, and no reason to start a daemon just to say so.
        if (client.json_output) PrintJson(json::object{{"state", "stopped"}, {"was_running", false}});
        else std::cout << "opencode server is not running (ralphd is not running)\n";
        return kExitOk;
    }
    json::value result = client.Call("server.stop");
    if (client.json_output) {
        PrintJson(result);
        return kExitOk;
    }
    const json::object& o = result.as_object();
    bool was = o.if_contains("was_running") && o.at("was_running").as_bool();
    if (was) std::cout << "opencode server stopped (pid " << Str(o, "stopped_pid") << ")\n";
    else std::cout << "opencode server was not running\n";
    return kExitOk;
}

int ServerRestart(Client& client, const std::vector<std::string>& args)
{
    ParseCommandArgs(args, po::options_description());
    json::value result = client.Call("server.restart");
    if (client.json_output) {
        PrintJson(result);
        return kExitOk;
    }
    const json::object& o = result.as_object();
    std::cout << "opencode server restarted at " << Str(o, "url") << " (pid " << Str(o, "pid") << ", version "
              << Str(o, "version") << ")\n";
    return kExitOk;
}

}  // namespace

const std::vector<Command>& ServerCommands()
{
    static const std::vector<Command> commands = {
        {"server status", "", "show the opencode server ralph manages and any it does not", ServerStatus},
        {"server start", "", "start the opencode server (also clears `fatal`)", ServerStart},
        {"server stop", "", "stop the opencode server and every tool process it started", ServerStop, false},
        {"server restart", "", "stop the opencode server and start it again", ServerRestart},
    };
    return commands;
}

}  // namespace ralph
