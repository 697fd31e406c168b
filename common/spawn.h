// Starting a program with a private environment and its output in files: the one spawner of the
// tests, the benchmark and its load generator. (ralphd's own children go through
// daemon/process.*, which also owns their pipes and reaping.)
#pragma once

#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace ralph {

/// Environment overrides: a value replaces the variable, "" removes it.
using EnvOverrides = std::map<std::string, std::string>;

/// This process's environment with `overrides` applied, as NAME=VALUE strings.
std::vector<std::string> MergeEnvironment(const EnvOverrides& overrides);

struct SpawnSpec {
    std::vector<std::string> argv;  ///< argv[0] is found on PATH when it has no '/'
    EnvOverrides env;
    std::string cwd;  ///< empty: ours
    std::string stdout_path{"/dev/null"};
    std::string stderr_path{"/dev/null"};
    bool append{false};  ///< append to the output files instead of truncating them
};

/// Starts the program with stdin from /dev/null, default signal dispositions and an empty signal
/// mask (as a shell would give). Throws std::runtime_error "cannot start PROGRAM: why".
pid_t SpawnProcess(const SpawnSpec& spec);

}  // namespace ralph
