// ralphd.conf and a task's ralph.ini (SPEC §6), read with Boost.Program_options.
// Precedence: command line, then environment (RALPH_SERVER_PORT, RALPH_RUN_MODEL, RALPH_OPENCODE, ...),
// then the config file, then the defaults below.
#pragma once

#include "common/duration.h"

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace ralph {

struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct ServerSettings {
    std::string mode{"managed"};  ///< managed | external
    std::string url;              ///< external mode: the server's base URL
    std::string password;         ///< external mode: its OPENCODE_SERVER_PASSWORD, if any
    std::string opencode;         ///< the opencode binary; empty means "opencode" on PATH
    int port{14096};
    int port_min{14096};
    int port_max{14196};
    Millis health_interval{std::chrono::seconds(5)};
    int health_failures{3};
    Millis restart_backoff_max{std::chrono::seconds(60)};
    int start_limit_burst{5};
    Millis start_limit_interval{std::chrono::minutes(5)};
    Millis stop_timeout{std::chrono::seconds(10)};
    Millis idle_stop{0};  ///< 0: never stop an idle server
    /// Above this resident memory (bytes, the server's process group) the managed server is
    /// restarted at a moment no iteration is in flight (SPEC §8); 0: never.
    int64_t max_memory{int64_t(2) << 30};
    /// A project's instance in the server is disposed after this long without an active run; 0: never.
    Millis instance_idle{std::chrono::minutes(10)};
};

struct RunSettings {
    int max_iterations{10};
    Millis iteration_timeout{std::chrono::minutes(30)};
    int max_consecutive_failures{3};
    std::string completion_promise{"COMPLETE"};
    std::string model;  ///< provider/model, empty for opencode's default
    std::string agent;
    /// An iteration that opencode accepted but that shows no sign of starting within this ends as
    /// `error` (SPEC §8); so does one whose session reports an error and never goes idle.
    Millis stall_timeout{std::chrono::minutes(2)};
    /// In a git project, a run that changes nothing this many iterations in a row stops
    /// (`no_progress`, SPEC §8); 0 = never.
    int max_idle_iterations{3};
    /// Files larger than this (bytes) are left out of checkpoints (SPEC §9); 0 = no limit.
    int64_t checkpoint_max_file{int64_t(10) << 20};
    /// auto: a git worktree of its own when another active run works in the same tree; always;
    /// never (SPEC §9).
    std::string worktree{"auto"};
    // Budgets (SPEC §8); 0 = none.
    double max_cost{0};       ///< USD over the run
    int64_t max_tokens{0};    ///< input + output + reasoning over the run
    Millis max_time{0};       ///< time spent running
    /// A shell command that must exit 0 before a promise or a complete prd.json completes the
    /// run (SPEC §8); empty: none. Killed with its process group after verify_timeout.
    std::string verify;
    Millis verify_timeout{std::chrono::minutes(10)};
    /// Waiting out a provider's rate limit (SPEC §8): back-off from 1m doubling up to this...
    Millis rate_limit_backoff_max{std::chrono::minutes(30)};
    /// ...and `failed` (provider_unavailable) after this long of nothing but rate_limited iterations.
    Millis rate_limit_give_up{std::chrono::hours(6)};
    // Hooks (SPEC §10): [hooks] in ralphd.conf or a task's ralph.ini, read when they run.
    std::string on_iteration_end, on_run_end;  ///< shell commands; empty: none
    std::string notify{"none"};                ///< none or desktop
};

struct DaemonSettings {
    /// At most this many runs `running` at once; a run started beyond it is `queued` (SPEC §8). 0: no limit.
    int max_running{0};
};

struct Config {
    DaemonSettings daemon;
    ServerSettings server;
    RunSettings run;
    std::string path;  ///< the config file read (it may not exist)
};

/// Reads the config. `overrides` are "section.key=value" strings from the command line.
/// Throws ConfigError naming the key, the value and what is allowed.
Config LoadConfig(const std::string& path, const std::map<std::string, std::string>& overrides);

/// Sets one `run.*` or `hooks.*` key from its text, with the checks every source shares (ralphd.conf, ralph.ini,
/// the command line, run.start). Throws ConfigError naming the key, the value and what is allowed.
void ApplyRunSetting(RunSettings& run, const std::string& key, const std::string& value);

/// Applies a task's ralph.ini ([run] and [hooks] keys only) over `base`. Throws ConfigError.
RunSettings ApplyTaskIni(const RunSettings& base, const std::string& ini_path);

/// Every key with its default and meaning, for `ralphd --help`.
std::string ConfigKeysHelp();

/// The names of every config key ("server.port", ...).
std::vector<std::string> ConfigKeyNames();

/// What ralphd.conf itself sets, by key, as written (no environment, no command line); a missing
/// file sets nothing. Throws ConfigError. `ralph daemon reload` compares two of these.
std::map<std::string, std::string> ConfigFileValues(const std::string& path);

}  // namespace ralph
