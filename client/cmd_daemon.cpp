// ralph daemon status|stop
#include "client/commands.h"
#include "common/rpc_client.h"

#include <chrono>
#include <iostream>
#include <thread>

namespace ralph {

namespace json = boost::json;
namespace po = boost::program_options;

namespace {

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
    client.Call("daemon.shutdown");
    client.Disconnect();
    // Wait until it has really gone, so the next command starts from a clean slate.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (SocketAnswers(client.socket_path)) {
        if (std::chrono::steady_clock::now() > deadline) {
            std::cerr << "ralph: ralphd accepted the shutdown but still answers after 60s\n";
            return kExitDaemonError;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (client.json_output) PrintJson(json::object{{"stopped", true}, {"was_running", true}, {"pid", info.at("pid")}});
    else std::cout << "ralphd stopped (pid " << json::serialize(info.at("pid")) << ")\n";
    return kExitOk;
}

}  // namespace

const std::vector<Command>& DaemonCommands()
{
    static const std::vector<Command> commands = {
        {"daemon start", "", "start the daemon when it is not running, then show its status", DaemonStart},
        {"daemon status", "", "show the daemon's pid, uptime, socket and files", DaemonStatus, false},
        {"daemon stop", "", "stop the daemon (running loops resume when it starts again)", DaemonStop, false},
    };
    return commands;
}

}  // namespace ralph
