// ralph import-legacy: records the loops of the earlier Python ralph as finished runs.
#include "client/commands.h"
#include "client/format.h"
#include "common/paths.h"

#include <iostream>
#include <unistd.h>

namespace ralph {

namespace json = boost::json;
namespace po = boost::program_options;

namespace {

/// Where the earlier ralph kept its registry: ~/.local/share/ralph/sessions.db (it ignored
/// XDG_DATA_HOME; a file there is taken when the usual one does not exist).
std::string DefaultLegacyPath()
{
    std::string home_path = GetEnv("HOME") + "/.local/share/ralph/sessions.db";
    if (access(home_path.c_str(), F_OK) == 0) return home_path;
    if (std::string xdg = GetEnv("XDG_DATA_HOME"); !xdg.empty()) {
        std::string xdg_path = xdg + "/ralph/sessions.db";
        if (access(xdg_path.c_str(), F_OK) == 0) return xdg_path;
    }
    return home_path;
}

int ImportLegacy(Client& client, const std::vector<std::string>& args)
{
    po::options_description o;
    o.add_options()("path", po::value<std::string>());
    auto vm = ParseCommandArgs(args, o, "path");
    std::string path = vm.count("path") ? vm["path"].as<std::string>() : DefaultLegacyPath();
    if (path.empty()) throw UsageError("empty path");
    if (path[0] != '/') path = client.cwd + "/" + path;
    json::value result = client.Call("import.legacy", json::object{{"path", path}});
    if (client.json_output) {
        PrintJson(result);
        return kExitOk;
    }
    for (const json::value& e : result.at("entries").as_array()) {
        std::string action = Field(e, "action");
        std::string task = Field(e, "task");
        if (action == "imported") {
            std::string status = Field(e, "status") + (Field(e, "reason") != "-" ? " (" + Field(e, "reason") + ")" : "");
            std::cout << "run " << Field(e, "run") << ": " << task << ", " << status;
            if (Field(e, "message") != "-") std::cout << "; " << Field(e, "message");
            std::cout << "\n";
        } else if (action == "already_imported") {
            std::cout << task << ": " << Field(e, "message") << "\n";
        } else {
            std::cout << task << ": skipped, " << Field(e, "message") << "\n";
        }
    }
    for (const json::value& w : result.at("warnings").as_array()) std::cerr << "ralph: " << w.as_string() << "\n";
    std::cout << "imported " << Field(result, "imported") << " run(s) from " << Field(result, "path") << "; "
              << Field(result, "already_imported") << " imported before, " << Field(result, "skipped") << " skipped\n";
    return kExitOk;
}

}  // namespace

const std::vector<Command>& ImportCommands()
{
    static const std::vector<Command> commands = {
        {"import-legacy", "[PATH]",
         "import the earlier Python ralph's history (~/.local/share/ralph/sessions.db, only read) as finished "
         "runs, once",
         ImportLegacy},
    };
    return commands;
}

}  // namespace ralph
