// ralph: the thin command-line client of ralphd. Global options, then one command from the table.
#include "client/client.h"
#include "client/commands.h"
#include "common/errors.h"
#include "common/paths.h"
#include "common/rpc_client.h"

#include <csignal>
#include <iostream>

using namespace ralph;

static void PrintHelp(std::ostream& out)
{
    out << "Usage: ralph [--socket PATH] [--json] [--no-autostart] COMMAND [ARGS]\n\n"
           "Runs autonomous coding-agent loops (Ralph loops) through ralphd and one shared opencode server.\n\n"
           "Commands:\n";
    for (const Command* c : AllCommands()) {
        std::string line = std::string("  ") + c->name + (c->usage[0] ? " " : "") + c->usage;
        if (line.size() < 44) line.resize(44, ' ');
        else line += "\n" + std::string(44, ' ');
        out << line << c->summary << "\n";
    }
    out << "\nGlobal options (before or after the command):\n"
           "  --socket PATH     the daemon's socket (default $RALPH_SOCKET, $XDG_RUNTIME_DIR/ralph/ralphd.sock)\n"
           "  --json            print one JSON document on stdout\n"
           "  --no-autostart    do not start ralphd when it is not running (also RALPH_NO_AUTOSTART=1)\n"
           "  --help, --version\n\n"
           "Exit codes: 0 ok, 1 error from the daemon, 2 usage error, 3 daemon unreachable;\n"
           "`ralph run --follow`: 0 completed, 4 stopped, 5 failed.\n";
}

int main(int argc, char** argv)
{
    std::signal(SIGPIPE, SIG_IGN);
    Client client;
    client.socket_path = DefaultSocketPath();
    client.autostart = GetEnv("RALPH_NO_AUTOSTART") != "1";
    bool help = false;
    std::vector<std::string> words;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--") {
            for (++i; i < argc; ++i) words.push_back(argv[i]);
            break;
        }
        if (a == "--json") client.json_output = true;
        else if (a == "--no-autostart") client.autostart = false;
        else if (a == "--help" || a == "-h") help = true;
        else if (a == "--version") {
            std::cout << "ralph " << RALPH_VERSION << "\n";
            return kExitOk;
        } else if (a == "--socket" || a.rfind("--socket=", 0) == 0) {
            if (a == "--socket") {
                if (i + 1 >= argc) {
                    std::cerr << "ralph: --socket needs a path\n";
                    return kExitUsage;
                }
                client.socket_path = argv[++i];
            } else {
                client.socket_path = a.substr(9);
            }
        } else words.push_back(a);
    }

    const Command* command = nullptr;
    std::size_t used = 0;
    for (const Command* c : AllCommands()) {
        std::string name = c->name;
        auto space = name.find(' ');
        if (space == std::string::npos) {
            if (!words.empty() && words[0] == name) command = c, used = 1;
        } else if (words.size() >= 2 && words[0] == name.substr(0, space) && words[1] == name.substr(space + 1)) {
            command = c, used = 2;
        }
    }
    if (!command) {
        if (words.empty() && help) {
            PrintHelp(std::cout);
            return kExitOk;
        }
        if (words.empty()) {
            PrintHelp(std::cerr);
        } else {
            std::cerr << "ralph: unknown command '" << words[0] << (words.size() > 1 ? " " + words[1] : "")
                      << "'. Run 'ralph --help' for the list.\n";
        }
        return kExitUsage;
    }
    if (help) {
        std::cout << "Usage: ralph " << command->name << " " << command->usage << "\n\n" << command->summary << "\n";
        return kExitOk;
    }
    if (!command->starts_daemon) client.autostart = false;
    std::vector<std::string> args(words.begin() + static_cast<long>(used), words.end());
    try {
        return command->run(client, args);
    } catch (const UsageError& e) {
        std::cerr << "ralph " << command->name << ": " << e.what() << "\nUsage: ralph " << command->name << " "
                  << command->usage << "\n";
        return kExitUsage;
    } catch (const DaemonError& e) {
        if (client.json_output)
            PrintJson(boost::json::object{
                {"error", {{"code", e.code}, {"name", RpcCodeName(e.code)}, {"message", e.what()}}}});
        std::cerr << "ralph: " << e.what() << "\n";
        return kExitDaemonError;
    } catch (const UntrustedSocket& e) {
        std::cerr << "ralph: " << e.what() << ".\n";
        return kExitUnreachable;
    } catch (const ConnectionError& e) {
        std::cerr << "ralph: cannot reach ralphd: " << e.what() << "\n"
                  << "Start it with 'ralphd' (or 'systemctl --user start ralphd.socket')"
                  << (client.autostart ? "" : ", or drop --no-autostart / RALPH_NO_AUTOSTART") << ".\n";
        return kExitUnreachable;
    }
}
