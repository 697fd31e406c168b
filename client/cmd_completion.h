// Shell completion scripts generated from the command table (ralph completion bash|zsh|fish).
#pragma once

#include <string>
#include <vector>

namespace ralph {

/// What a command's usage string says it accepts, for completion.
struct UsageSpec {
    std::vector<std::string> options;        ///< "-n", "--model", "-f", ...
    std::vector<std::string> value_options;  ///< those followed by a placeholder: "-n N"
    std::vector<std::string> words;          ///< fixed choices: "bash|zsh|fish"
    bool tasks{false};                       ///< takes a task (or run): <task>, <task or run>
    bool files{false};                       ///< takes a PATH
};

/// Reads a usage string such as "<task> [-n N] [-f] [-v|--verbose]".
UsageSpec ParseUsage(const std::string& usage);

/// The script for "bash", "zsh" or "fish"; empty for another shell.
std::string CompletionScript(const std::string& shell);

}  // namespace ralph
