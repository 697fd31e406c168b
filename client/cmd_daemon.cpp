// ralph daemon start|status|stop|reload
#include "client/commands.h"
#include "common/rpc_client.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <thread>

namespace ralph {

namespace json = boost::json;
namespace po = boost::program_options;

namespace {

/// True once `pid` has exited: no such process, or a zombie (which holds no lock nor socket).
bool ProcessExited(int pid)
{
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return kill(pid, 0) != 0 && errno == ESRCH;
    auto name_end = line.rfind(')');
    return name_end != std::string::npos && name_end + 2 < line.size() && line[name_end + 2] == 'Z';
}

int DaemonStatus(Client& client, const std::vector<std::string>& args)
{
    ParseCommandArgs(args, po::options_description());
    json::value info = client.Call("daemon.info");
    if (client.json_output) {
        PrintJson(info);
        return kExitOk;
    }
    const json::object& o = info.as_object();
    std::cout << "ralphd " << o.at("version").as_string().c_str() << " is running\n"
              << "  pid:      " << json::serialize(o.at("pid")) << "\n"
              << "  uptime:   " << HumanDuration(static_cast<long long>(o.at("uptime").to_number<double>() * 1000)) << "\n"
              << "  socket:   " << o.at("socket").as_string().c_str() << "\n"
              << "  database: " << o.at("database").as_string().c_str() << "\n"
              << "  config:   " << o.at("config").as_string().c_str() << "\n";
    return kExitOk;
}

int DaemonStart(Client& client, const std::vector<std::string>& args)
{
    // Connecting starts ralphd when it is not running (unless autostart is off).
    return DaemonStatus(client, args);
}

int DaemonStop(Client& client, const std::vector<std::string>& args)
{
    ParseCommandArgs(args, po::options_description());
    if (!client.DaemonAnswers()) {
        if (client.json_output) PrintJson(json::object{{"stopped", true}, {"was_running", false}});
        else std::cout << "ralphd is not running\n";
        return kExitOk;
    }
    json::value info = client.Call("daemon.info");
    const int pid = info.at("pid").is_int64() ? static_cast<int>(info.at("pid").as_int64()) : 0;
    client.Call("daemon.shutdown");
    client.Disconnect();
    // ralphd closes its socket first, then stops the opencode server, and holds its instance lock
    // until it exits: only then may the next `ralphd` (or an autostart) begin (SPEC §7).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (SocketAnswers(client.socket_path) || (pid > 0 && !ProcessExited(pid))) {
        if (std::chrono::steady_clock::now() > deadline) {
            std::cerr << "ralph: ralphd (pid " << pid << ") is still stopping after 60s; it holds its lock until "
                      << "it has stopped the opencode server. Check again with: ralph daemon status\n";
            return kExitDaemonError;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (client.json_output) PrintJson(json::object{{"stopped", true}, {"was_running", true}, {"pid", info.at("pid")}});
    else std::cout << "ralphd stopped (pid " << json::serialize(info.at("pid")) << ")\n";
    return kExitOk;
}

int DaemonReload(Client& client, const std::vector<std::string>& args)
{
    ParseCommandArgs(args, po::options_description());
    if (!client.DaemonAnswers()) {
        if (client.json_output) PrintJson(json::object{{"reloaded", false}, {"was_running", false}});
        else std::cout << "ralphd is not running; it reads ralphd.conf when it starts\n";
        return kExitOk;
    }
    json::value reply = client.Call("daemon.reload");
    if (client.json_output) {
        PrintJson(reply);
        return kExitOk;
    }
    const json::object& o = reply.as_object();
    std::cout << "ralphd re-read " << o.at("config").as_string().c_str() << "\n";
    const json::array& applied = o.at("applied").as_array();
    const json::array& restart = o.at("needs_restart").as_array();
    if (applied.empty() && restart.empty()) std::cout << "  no key changed\n";
    for (const json::value& key : applied) std::cout << "  applied: " << key.as_string().c_str() << "\n";
    for (const json::value& item : restart)
        std::cout << "  needs a restart: " << item.at("key").as_string().c_str() << ": "
                  << item.at("why").as_string().c_str() << "\n";
    if (!restart.empty()) std::cout << "Restart with: ralph daemon stop, then any ralph command (running loops resume)\n";
    return kExitOk;
}

}  // namespace

const std::vector<Command>& DaemonCommands()
{
    static const std::vector<Command> commands = {
        {"daemon start", "", "start the daemon when it is not running, then show its status", DaemonStart},
        {"daemon status", "", "show the daemon's pid, uptime, socket and files", DaemonStatus, false},
        {"daemon stop", "", "stop the daemon (running loops resume when it starts again)", DaemonStop, false},
        {"daemon reload", "", "re-read ralphd.conf (as SIGHUP does) and name the keys that need a restart", DaemonReload, false},
    };
    return commands;
}

}  // namespace ralph
