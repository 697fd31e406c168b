// ralphd: the per-user supervisor daemon. Parses options, then hands over to Daemon::Run.
#include "common/log.h"
#include "common/paths.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/rpc_table.h"

#include <boost/program_options.hpp>

#include <csignal>
#include <sys/stat.h>
#include <iostream>

namespace po = boost::program_options;
using namespace ralph;

int main(int argc, char** argv)
{
    std::signal(SIGPIPE, SIG_IGN);
    umask(077);

    po::options_description opts("Options");
    opts.add_options()
        ("help,h", "show this help and exit")
        ("version", "show the version and exit")
        ("socket", po::value<std::string>(), "socket path (default: $RALPH_SOCKET, $XDG_RUNTIME_DIR/ralph/ralphd.sock or /tmp/ralph-UID/ralphd.sock)")
        ("state-dir", po::value<std::string>(), "state directory holding ralph.db (default: $RALPH_STATE_DIR or $XDG_STATE_HOME/ralph)")
        ("config", po::value<std::string>(), "config file (default: $RALPH_CONFIG or $XDG_CONFIG_HOME/ralph/ralphd.conf)")
        ("set", po::value<std::vector<std::string>>(), "override a config key, e.g. --set server.port=14100 (repeatable)")
        ("client-timeout", po::value<std::string>()->default_value("60s"), "close client connections idle this long")
        ("debug", "log debug messages")
        ("protocol-doc", "print the socket protocol reference (docs/protocol.md) and exit");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, opts), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "ralphd: " << e.what() << "\nTry 'ralphd --help'.\n";
        return 2;
    }
    if (vm.count("help")) {
        std::cout << "Usage: ralphd [options]\n\n"
                     "The ralph supervisor daemon: owns one opencode server and runs Ralph loops.\n"
                     "Runs in the foreground; logs go to stderr. Usually started by `ralph` or systemd.\n\n"
                  << opts << "\nConfig keys (ralphd.conf, INI; environment RALPH_SECTION_KEY, e.g. RALPH_SERVER_PORT;\n"
                     "command line --set section.key=value), with their defaults:\n"
                  << ConfigKeysHelp();
        return 0;
    }
    if (vm.count("version")) {
        std::cout << "ralphd " << RALPH_VERSION << "\n";
        return 0;
    }
    if (vm.count("protocol-doc")) {
        RpcTable table;
        RegisterAllMethods(table);
        std::cout << RenderProtocolMarkdown(table.Specs());
        return 0;
    }

    DaemonOptions options;
    options.socket_path = vm.count("socket") ? vm["socket"].as<std::string>() : DefaultSocketPath();
    options.state_dir = vm.count("state-dir") ? vm["state-dir"].as<std::string>() : DefaultStateDir();
    options.config_path = vm.count("config") ? vm["config"].as<std::string>() : DefaultConfigPath();
    if (vm.count("set")) {
        for (const std::string& kv : vm["set"].as<std::vector<std::string>>()) {
            auto eq = kv.find('=');
            if (eq == std::string::npos) {
                std::cerr << "ralphd: --set takes section.key=value, got '" << kv << "'\n";
                return 2;
            }
            options.overrides[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
    }
    auto timeout = ParseDuration(vm["client-timeout"].as<std::string>());
    if (!timeout || timeout->count() == 0) {
        std::cerr << "ralphd: invalid --client-timeout\n";
        return 2;
    }
    options.client_idle_timeout = *timeout;
    LogInit(vm.count("debug") > 0);
    Daemon daemon(std::move(options));
    return daemon.Run();
}
