// The client's command table: one entry per subcommand (tmux's cmd_entry, bitcoin-cli's argv ->
// request -> call -> print). Each cmd_*.cpp file defines its group's entries.
#pragma once

#include "client/client.h"

#include <boost/program_options.hpp>

#include <string>
#include <vector>

namespace ralph {

struct Command {
    const char* name;     ///< "run", or two words for a group: "daemon status"
    const char* usage;    ///< arguments after the name
    const char* summary;
    /// Runs the command and returns the exit code; throws UsageError, DaemonError, ConnectionError.
    int (*run)(Client& client, const std::vector<std::string>& args);
    bool starts_daemon{true};  ///< false: never autostart ralphd for this command
};

const std::vector<Command>& DaemonCommands();
const std::vector<Command>& ServerCommands();
const std::vector<Command>& RunCommands();
const std::vector<Command>& AttachCommands();
const std::vector<Command>& ImportCommands();
const std::vector<Command>& CompletionCommands();

/// A task-or-run argument: digits are a run id, anything else a task reference.
boost::json::value RunRef(const std::string& arg);

/// Every command, in the order `ralph --help` lists them.
std::vector<const Command*> AllCommands();

/// Parses a command's own options; positional arguments go to `positional_name` (repeatable).
/// Throws UsageError.
boost::program_options::variables_map ParseCommandArgs(const std::vector<std::string>& args,
                                                       const boost::program_options::options_description& options,
                                                       const char* positional_name = nullptr,
                                                       int max_positional = 1);

}  // namespace ralph
