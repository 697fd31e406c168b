// The client's command table: one entry per subcommand (tmux's cmd_entry, bitcoin-cli's argv ->
// request -> call -> print). Each cmd_*.cpp file defines its group's entries; `ralph --help`,
// each command's `--help` and its option parser are all made from those entries.
#pragma once

#include "client/client.h"

#include <boost/program_options.hpp>

#include <string>
#include <vector>

namespace ralph {

/// One option of a command, as its `--help` lists it and its parser reads it. Values are read as
/// text; the command converts them (CommandArgs::Int, ::Duration) so errors name the option as typed.
struct CommandOption {
    const char* name;               ///< Boost.Program_options form: "max-iterations,n"
    const char* value;              ///< "N", "DUR", ...; nullptr for a switch
    const char* help;
    const char* default_text = "";  ///< what applies when it is not given, "" when nothing needs saying
};

struct Command {
    const char* name;     ///< "run", or two words for a group: "daemon status"
    const char* usage;    ///< arguments after the name
    const char* summary;
    /// Runs the command and returns the exit code; throws UsageError, DaemonError, ConnectionError.
    int (*run)(Client& client, const std::vector<std::string>& args);
    bool starts_daemon{true};  ///< false: never autostart ralphd for this command
    std::vector<CommandOption> options{};
    const char* more_help = nullptr;  ///< printed at the end of `ralph COMMAND --help` (top's keys)
};

const std::vector<Command>& DaemonCommands();
const std::vector<Command>& ServerCommands();
const std::vector<Command>& RunCommands();
const std::vector<Command>& AttachCommands();
const std::vector<Command>& ImportCommands();
const std::vector<Command>& CompletionCommands();
const std::vector<Command>& TopCommands();
const std::vector<Command>& GitCommands();

/// A task-or-run argument: digits are a run id, anything else a task reference.
boost::json::value RunRef(const std::string& arg);

/// Every command, in the order `ralph --help` lists them.
std::vector<const Command*> AllCommands();
/// The entry named `name` ("run", "server status"); nullptr when there is none.
const Command* FindCommand(const std::string& name);

/// Parses a command's own options; positional arguments go to `positional_name` (repeatable).
/// Throws UsageError.
boost::program_options::variables_map ParseCommandArgs(const std::vector<std::string>& args,
                                                       const boost::program_options::options_description& options,
                                                       const char* positional_name = nullptr,
                                                       int max_positional = 1);

/// A command's arguments parsed by the options of its table entry.
class CommandArgs {
public:
    CommandArgs(const Command& command, const std::vector<std::string>& args, const char* positional_name,
                int max_positional);
    bool Has(const char* name) const { return vm_.count(name) > 0; }
    bool Switch(const char* name) const;
    std::string Text(const char* name) const;
    /// A whole number from `min` to `max`; a UsageError naming the option as typed otherwise.
    long long Int(const char* name, long long min, long long max) const;
    /// A duration (SPEC §13) in the form the daemon reads; a UsageError listing the units otherwise.
    std::string Duration(const char* name) const;
    /// An amount of US dollars of 0 or more ("0.50", "$5"); a UsageError otherwise.
    double Usd(const char* name) const;
    /// How the user wrote the option: "-n", "--max-iterations" (its long form when not found).
    std::string Spelling(const char* name) const;

private:
    const Command& command_;
    std::vector<std::string> args_;
    boost::program_options::variables_map vm_;
};

/// The command's positional argument (parsed as "ref"); a UsageError "missing WHAT" without one.
std::string Positional(const CommandArgs& vm, const char* what);

/// The options of a command's table entry as its `--help` lists them ("" when it has none).
std::string OptionsHelp(const Command& command);

}  // namespace ralph
