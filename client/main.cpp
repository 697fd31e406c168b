// ralph: the thin command-line client of ralphd. Global options, then one command from the table.
#include "client/client.h"
#include "client/commands.h"
#include "common/errors.h"
#include "common/paths.h"
#include "common/rpc_client.h"

#include <algorithm>
#include <csignal>
#include <iostream>

using namespace ralph;

static void PrintCommandLines(std::ostream& out, const std::vector<const Command*>& commands)
{
    for (const Command* c : commands) {
        std::string line = std::string("  ") + c->name + (c->usage[0] ? " " : "") + c->usage;
        if (line.size() < 44) line.resize(44, ' ');
        else line += "\n" + std::string(44, ' ');
        out << line << c->summary << "\n";
    }
}

static void PrintHelp(std::ostream& out)
{
    out << "Usage: ralph [--socket PATH] [--json] [--no-autostart] COMMAND [ARGS]\n\n"
           "Runs autonomous coding-agent loops (Ralph loops) through ralphd and one shared opencode server.\n\n"
           "Commands ('ralph COMMAND --help' lists a command's options):\n";
    PrintCommandLines(out, AllCommands());
    out << "\nGlobal options (before or after the command):\n"
           "  --socket PATH     the daemon's socket (default $RALPH_SOCKET, $XDG_RUNTIME_DIR/ralph/ralphd.sock)\n"
           "  --json            print one JSON document on stdout\n"
           "  --no-autostart    do not start ralphd when it is not running (also RALPH_NO_AUTOSTART=1)\n"
           "  --help, --version\n\n"
           "Durations (DUR) are a number with a unit ms, s, m, h or d: 500ms, 90s, 15m, 2h, 1d, 1h30m;\n"
           "a bare number is seconds.\n\n"
           "Exit codes: 0 ok, 1 error from the daemon, 2 usage error, 3 daemon unreachable;\n"
           "`ralph run -f` and `ralph logs -f`: 0 completed, 4 stopped, 5 failed, 6 ralphd stopped while\n"
           "following (the run goes on), 130 Ctrl-C (the run goes on). More in docs/reference.md.\n";
}

static void PrintCommandHelp(std::ostream& out, const Command& command)
{
    out << "Usage: ralph " << command.name << (command.usage[0] ? " " : "") << command.usage << "\n\n"
        << command.summary << "\n";
    if (std::string options = OptionsHelp(command); !options.empty()) out << "\nOptions:\n" << options;
    if (command.more_help) out << "\n" << command.more_help;
    out << "\nThe global options --socket PATH, --json and --no-autostart work here too (ralph --help).\n";
}

/// The commands of a group ("server"), empty when `word` names none.
static std::vector<const Command*> GroupCommands(const std::string& word)
{
    std::vector<const Command*> out;
    for (const Command* c : AllCommands())
        if (std::string(c->name).rfind(word + " ", 0) == 0) out.push_back(c);
    return out;
}

static void PrintGroupHelp(std::ostream& out, const std::string& group)
{
    out << "Usage: ralph " << group << " COMMAND\n\nCommands:\n";
    PrintCommandLines(out, GroupCommands(group));
}

/// Edit distance with adjacent transpositions ("statsu" is one edit from "status").
static std::size_t EditDistance(const std::string& a, const std::string& b)
{
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i)
        for (std::size_t j = 1; j <= b.size(); ++j) {
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}

/// The closest of `names` to `typed`: within two edits, or a name it begins; "" for none.
static std::string Closest(const std::string& typed, const std::vector<std::string>& names)
{
    std::string best;
    std::size_t best_distance = 3;
    for (const std::string& name : names) {
        std::size_t distance = EditDistance(typed, name);
        if (typed.size() >= 2 && name.rfind(typed, 0) == 0) distance = std::min<std::size_t>(distance, 1);
        if (distance < best_distance && distance < name.size()) best = name, best_distance = distance;
    }
    return best;
}

/// Says that a command line names no command, what the user probably meant, and where the list is.
static void PrintUnknownCommand(const std::vector<std::string>& words)
{
    auto subcommands = [](const std::string& group) {
        std::vector<std::string> out;
        for (const Command* c : GroupCommands(group)) out.push_back(std::string(c->name).substr(group.size() + 1));
        return out;
    };
    if (words.size() >= 2 && !GroupCommands(words[0]).empty()) {
        std::string guess = Closest(words[1], subcommands(words[0]));
        std::cerr << "ralph: unknown command '" << words[0] << " " << words[1] << "'";
        if (!guess.empty()) std::cerr << "; did you mean 'ralph " << words[0] << " " << guess << "'?";
        std::cerr << "\n\n";
        PrintGroupHelp(std::cerr, words[0]);
        return;
    }
    std::vector<std::string> top;  // single commands and group names
    for (const Command* c : AllCommands()) {
        std::string name = c->name;
        std::string first = name.substr(0, name.find(' '));
        if (std::find(top.begin(), top.end(), first) == top.end()) top.push_back(first);
    }
    std::string guess = Closest(words[0], top);
    std::cerr << "ralph: unknown command '" << words[0] << "'";
    if (!guess.empty()) {
        std::string rest;
        if (!GroupCommands(guess).empty() && words.size() > 1) {
            std::string sub = Closest(words[1], subcommands(guess));
            rest = " " + (sub.empty() ? words[1] : sub);
        }
        std::cerr << "; did you mean 'ralph " << guess << rest << "'?";
    }
    std::cerr << " Run 'ralph --help' for the list.\n";
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
        } else if (words.size() == 1 && !GroupCommands(words[0]).empty()) {
            PrintGroupHelp(help ? std::cout : std::cerr, words[0]);
            return help ? kExitOk : kExitUsage;
        } else {
            PrintUnknownCommand(words);
        }
        return kExitUsage;
    }
    if (help) {
        PrintCommandHelp(std::cout, *command);
        return kExitOk;
    }
    const bool autostart_refused_by_user = !client.autostart;
    if (!command->starts_daemon) client.autostart = false;
    std::vector<std::string> args(words.begin() + static_cast<long>(used), words.end());
    try {
        return command->run(client, args);
    } catch (const UsageError& e) {
        std::cerr << "ralph " << command->name << ": " << e.what() << "\nUsage: ralph " << command->name << " "
                  << command->usage << "\n('ralph " << command->name << " --help' lists its options)\n";
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
        // Only mention --no-autostart when the user gave it: `daemon status` never autostarts.
        std::cerr << "ralph: cannot reach ralphd: " << e.what() << "\n"
                  << "Start it with 'ralph daemon start' (or 'systemctl --user start ralphd.socket')"
                  << (autostart_refused_by_user ? ", or drop --no-autostart / RALPH_NO_AUTOSTART=1" : "") << ".\n";
        return kExitUnreachable;
    }
}
