// ralph attach: asks ralphd where to attach (attach.target), then becomes `opencode attach` with
// execvp, so that the terminal and its signals belong to opencode alone. The server's password
// travels over the socket (0600 in a 0700 directory, peer uid checked) and reaches opencode in
// OPENCODE_SERVER_PASSWORD, never on a command line.
#include "client/commands.h"
#include "client/format.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <unistd.h>

namespace ralph {

namespace json = boost::json;

namespace {


std::string ShellQuote(const std::string& s)
{
    if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/:=@%+") ==
                          std::string::npos)
        return s;
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string Text(const json::object& o, const char* key)
{
    auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

int Attach(Client& client, const std::vector<std::string>& args)
{
    CommandArgs vm(*FindCommand("attach"), args, "ref", 1);
    bool latest = vm.Switch("latest");
    bool print = vm.Switch("print");
    if (latest && vm.Has("ref")) throw UsageError("give a task or run, or --latest, not both");
    if (latest && vm.Has("session")) throw UsageError("give --session or --latest, not both");
    // Checked before asking the daemon, which may start the server for us.
    bool execute = !print && !client.json_output;
    if (execute && !(isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))) {
        std::cerr << "ralph attach: the opencode TUI needs a terminal on stdin and stdout; "
                     "use --print to see the command, or --json for the target\n";
        return kExitUsage;
    }

    json::object params{{"cwd", client.cwd}};
    if (vm.Has("ref")) params["run"] = RunRef(vm.Text("ref"));
    if (vm.Has("session")) params["session"] = vm.Text("session");
    if (latest) params["latest"] = true;
    json::object target = client.Call("attach.target", params).as_object();
    std::string password = Text(target, "password");
    std::string username = Text(target, "username");
    target.erase("password");
    if (client.json_output) {
        PrintJson(target);
        return kExitOk;
    }
    if (std::string note = Text(target, "note"); !note.empty()) std::cerr << note << "\n";

    std::vector<std::string> argv = {Text(target, "opencode"), "attach", Text(target, "url")};
    if (std::string session = Text(target, "session"); !session.empty()) {
        argv.push_back("--session");
        argv.push_back(session);
    }
    argv.push_back("--dir");
    argv.push_back(Text(target, "directory"));
    if (print) {
        std::string line;
        for (const std::string& a : argv) line += (line.empty() ? "" : " ") + ShellQuote(a);
        std::cout << line << "\n";
        return kExitOk;
    }

    client.Disconnect();  // no socket descriptor for opencode to inherit
    if (password.empty()) unsetenv("OPENCODE_SERVER_PASSWORD");
    else setenv("OPENCODE_SERVER_PASSWORD", password.c_str(), 1);
    if (username.empty()) unsetenv("OPENCODE_SERVER_USERNAME");
    else setenv("OPENCODE_SERVER_USERNAME", username.c_str(), 1);
    std::signal(SIGPIPE, SIG_DFL);  // ralph ignores it; an ignored signal would survive exec
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execvp(cargv[0], cargv.data());
    std::cerr << "ralph attach: cannot run " << argv[0] << ": " << std::strerror(errno) << "\n";
    return kExitDaemonError;
}

}  // namespace

const std::vector<Command>& AttachCommands()
{
    static const std::vector<Command> commands = {
        {"attach", "[<task or run>] [--session ID] [--latest] [--print]",
         "open the opencode TUI on a run's latest session; with no argument on opencode's home screen in this "
         "project (its session list: /sessions or ctrl+x l); never changes a run",
         Attach, true,
         {{"session,s", "ID", "one of the run's sessions (an iteration's); alone: the run that recorded it",
           "the run's latest session"},
          {"latest", nullptr, "the most recently active session of any run", "off"},
          {"print", nullptr, "print the opencode command (password left out) instead of running it", "off"}}},
    };
    return commands;
}

}  // namespace ralph
