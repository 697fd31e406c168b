#include "daemon/config.h"

#include <boost/program_options.hpp>

#include <cctype>
#include <fstream>
#include <sstream>

namespace ralph {

namespace po = boost::program_options;

namespace {

struct Key {
    const char* name;
    const char* default_text;
    const char* meaning;
};

const Key kKeys[] = {
    {"daemon.max_running", "0", "at most this many runs running at once; more are queued (0: no limit)"},
    {"server.mode", "managed", "managed (ralphd owns the opencode server) or external (use server.url)"},
    {"server.url", "", "external mode: the opencode server's base URL, e.g. http://127.0.0.1:4096"},
    {"server.password", "", "external mode: the server's OPENCODE_SERVER_PASSWORD, if it has one"},
    {"server.opencode", "opencode", "the opencode binary (also RALPH_OPENCODE); found on PATH when not a path"},
    {"server.port", "14096", "preferred port of the managed server"},
    {"server.port_range", "14096-14196", "ports to try when the preferred one is taken"},
    {"server.health_interval", "5s", "time between health checks"},
    {"server.health_failures", "3", "consecutive failed health checks before a restart"},
    {"server.restart_backoff_max", "60s", "longest wait between restarts (the wait doubles from 1s)"},
    {"server.start_limit_burst", "5", "starts allowed within start_limit_interval before the server is fatal"},
    {"server.start_limit_interval", "5m", "window of start_limit_burst"},
    {"server.stop_timeout", "10s", "wait after SIGTERM before SIGKILL"},
    {"server.idle_stop", "0", "stop the server after this long with no run (0: never)"},
    {"server.max_memory", "2G", "restart the server between iterations when it uses more memory (0: never)"},
    {"server.instance_idle", "10m", "dispose a project's instance in the server after this long without a run (0: never)"},
    {"run.max_iterations", "10", "iterations before a run stops (max_iterations)"},
    {"run.iteration_timeout", "30m", "an iteration taking longer is aborted"},
    {"run.max_consecutive_failures", "3", "failed iterations in a row before a run fails"},
    {"run.completion_promise", "COMPLETE", "the agent prints <promise>TEXT</promise> when done"},
    {"run.model", "", "provider/model for every prompt (empty: opencode's default)"},
    {"run.agent", "", "opencode agent (empty: opencode's default)"},
    {"run.stall_timeout", "2m", "an iteration with no answer and no busy status this long after its prompt is ended"},
    {"run.max_idle_iterations", "3", "in git: iterations in a row that change nothing before a run stops (0: off)"},
    {"run.worktree", "auto", "in git: auto (a worktree when another run works in the same tree), always or never"},
    {"run.checkpoint_max_file", "10M", "in git: files larger than this are left out of checkpoints (0: no limit)"},
    {"run.max_cost", "0", "stop a run once it has cost this many USD (budget; 0: no limit)"},
    {"run.max_tokens", "0", "stop a run once it has used this many tokens, input + output + reasoning (budget; 0: no limit)"},
    {"run.max_time", "0", "stop a run once it has been running this long (budget; 0: no limit)"},
    {"run.verify", "", "a shell command that must exit 0 before a run completes (empty: none)"},
    {"run.verify_timeout", "10m", "a verify command running longer is killed and counts as failed"},
    {"run.rate_limit_backoff_max", "30m", "longest wait after a rate-limited iteration (from 1m, doubling)"},
    {"run.rate_limit_give_up", "6h", "a run with nothing but rate-limited iterations this long fails (provider_unavailable)"},
    {"hooks.on_iteration_end", "", "a shell command run (in the run's work tree, 60s at most) after each iteration"},
    {"hooks.on_run_end", "", "a shell command run (in the run's work tree, 60s at most) when a run ends"},
    {"hooks.notify", "none", "none, or desktop: notify-send when a run ends (in a graphical session)"},
};

po::options_description Describe(bool run_only)
{
    po::options_description desc;
    for (const Key& k : kKeys) {
        std::string name = k.name;
        if (run_only && name.rfind("run.", 0) != 0 && name.rfind("hooks.", 0) != 0) continue;
        desc.add_options()(k.name, po::value<std::string>(), k.meaning);
    }
    return desc;
}

[[noreturn]] void Bad(const std::string& key, const std::string& value, const std::string& allowed)
{
    throw ConfigError("invalid value '" + value + "' for " + key + ": " + allowed);
}

int ToInt(const std::string& key, const std::string& v, int min, int max)
{
    std::size_t used = 0;
    long long n = 0;
    try {
        n = std::stoll(v, &used);
    } catch (...) {
        used = 0;
    }
    if (used != v.size() || v.empty() || n < min || n > max)
        Bad(key, v, "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    return static_cast<int>(n);
}

/// A whole number from 0 up.
int64_t ToInt64(const std::string& key, const std::string& v)
{
    if (v.empty() || v.size() > 15 || v.find_first_not_of("0123456789") != std::string::npos)
        Bad(key, v, "expected a whole number of 0 or more");
    return std::stoll(v);
}

/// A size in bytes: a whole number with an optional K, M or G (powers of 1024).
int64_t ToSize(const std::string& key, const std::string& v)
{
    std::string digits = v;
    int64_t unit = 1;
    if (!digits.empty()) {
        switch (std::toupper(static_cast<unsigned char>(digits.back()))) {
        case 'K': unit = int64_t(1) << 10; break;
        case 'M': unit = int64_t(1) << 20; break;
        case 'G': unit = int64_t(1) << 30; break;
        default: break;
        }
        if (unit != 1) digits.pop_back();
    }
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 12)
        Bad(key, v, "expected a size: a whole number of bytes, or with K, M or G (e.g. 10M)");
    return std::stoll(digits) * unit;
}

/// An amount of US dollars: a number of at least 0 (e.g. 0.50 or 5).
double ToCost(const std::string& key, const std::string& v)
{
    std::size_t used = 0;
    double d = -1;
    try {
        d = std::stod(v, &used);
    } catch (...) {
        used = 0;
    }
    if (used != v.size() || v.empty() || !(d >= 0) || d > 1e9) Bad(key, v, "expected an amount of USD, e.g. 0.50 or 5");
    return d;
}

Millis ToDuration(const std::string& key, const std::string& v, bool allow_zero)
{
    auto d = ParseDuration(v);
    if (!d || (!allow_zero && d->count() == 0))
        Bad(key, v, std::string("expected a duration") + (allow_zero ? "" : " more than zero") + ", " + kDurationUnits);
    return *d;
}

}  // namespace

void ApplyRunSetting(RunSettings& run, const std::string& key, const std::string& v)
{
    if (key == "run.max_iterations") run.max_iterations = ToInt(key, v, 1, 1000000);
    else if (key == "run.iteration_timeout") run.iteration_timeout = ToDuration(key, v, false);
    else if (key == "run.max_consecutive_failures") run.max_consecutive_failures = ToInt(key, v, 1, 1000000);
    else if (key == "run.completion_promise") {
        if (v.empty() || v.find('<') != std::string::npos || v.find('>') != std::string::npos)
            Bad(key, v, "expected non-empty text without '<' or '>'");
        run.completion_promise = v;
    } else if (key == "run.model") {
        if (!v.empty() && (v.find('/') == std::string::npos || v.front() == '/' || v.back() == '/'))
            Bad(key, v, "expected provider/model, e.g. anthropic/claude-sonnet-4");
        run.model = v;
    } else if (key == "run.agent") run.agent = v;
    else if (key == "run.stall_timeout") run.stall_timeout = ToDuration(key, v, false);
    else if (key == "run.max_idle_iterations") run.max_idle_iterations = ToInt(key, v, 0, 1000000);
    else if (key == "run.checkpoint_max_file") run.checkpoint_max_file = ToSize(key, v);
    else if (key == "run.worktree") {
        if (v != "auto" && v != "always" && v != "never") Bad(key, v, "expected auto, always or never");
        run.worktree = v;
    } else if (key == "run.max_cost") run.max_cost = ToCost(key, v);
    else if (key == "run.max_tokens") run.max_tokens = ToInt64(key, v);
    else if (key == "run.max_time") run.max_time = ToDuration(key, v, true);
    else if (key == "run.verify") run.verify = v;
    else if (key == "run.verify_timeout") run.verify_timeout = ToDuration(key, v, false);
    else if (key == "run.rate_limit_backoff_max") run.rate_limit_backoff_max = ToDuration(key, v, false);
    else if (key == "run.rate_limit_give_up") run.rate_limit_give_up = ToDuration(key, v, false);
    else if (key == "hooks.on_iteration_end") run.on_iteration_end = v;
    else if (key == "hooks.on_run_end") run.on_run_end = v;
    else if (key == "hooks.notify") {
        if (v != "none" && v != "desktop") Bad(key, v, "expected none or desktop");
        run.notify = v;
    }
    else throw ConfigError("unknown setting " + key);
}

namespace {

void ApplyServerKey(ServerSettings& s, const std::string& key, const std::string& v)
{
    if (key == "server.mode") {
        if (v != "managed" && v != "external") Bad(key, v, "expected managed or external");
        s.mode = v;
    } else if (key == "server.url") {
        if (!v.empty() && v.rfind("http://", 0) != 0) Bad(key, v, "expected an http:// URL");
        s.url = v;
    } else if (key == "server.password") s.password = v;
    else if (key == "server.opencode") s.opencode = v;
    else if (key == "server.port") s.port = ToInt(key, v, 1, 65535);
    else if (key == "server.port_range") {
        auto dash = v.find('-');
        if (dash == std::string::npos) Bad(key, v, "expected FIRST-LAST, e.g. 14096-14196");
        s.port_min = ToInt(key, v.substr(0, dash), 1, 65535);
        s.port_max = ToInt(key, v.substr(dash + 1), 1, 65535);
        if (s.port_min > s.port_max) Bad(key, v, "expected FIRST-LAST with FIRST <= LAST");
    } else if (key == "server.health_interval") s.health_interval = ToDuration(key, v, false);
    else if (key == "server.health_failures") s.health_failures = ToInt(key, v, 1, 1000);
    else if (key == "server.restart_backoff_max") s.restart_backoff_max = ToDuration(key, v, false);
    else if (key == "server.start_limit_burst") s.start_limit_burst = ToInt(key, v, 1, 1000);
    else if (key == "server.start_limit_interval") s.start_limit_interval = ToDuration(key, v, false);
    else if (key == "server.stop_timeout") s.stop_timeout = ToDuration(key, v, false);
    else if (key == "server.idle_stop") s.idle_stop = ToDuration(key, v, true);
    else if (key == "server.max_memory") s.max_memory = ToSize(key, v);
    else if (key == "server.instance_idle") s.instance_idle = ToDuration(key, v, true);
}

// Boost.Program_options builds its error messages by replacing placeholders such as
// %invalid_line% with the offending text, again and again while the result still holds the
// placeholder: a line containing "%invalid_line%" made what() loop forever (found by fuzz_task).
// So '%' never reaches it: files are read with '%' swapped for a marker, swapped back after.
constexpr std::string_view kPercentMarker = "\x1f\x1e";

std::string Swap(std::string text, std::string_view from, std::string_view to)
{
    for (std::size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size())
        text.replace(pos, from.size(), to);
    return text;
}

/// A value read by StoreFile, with its '%' back.
std::string FileValue(const po::variable_value& v) { return Swap(v.as<std::string>(), kPercentMarker, "%"); }

/// Parses an INI file into `vm`; a missing file is no error. Unknown keys are.
void StoreFile(const std::string& path, const po::options_description& desc, po::variables_map& vm, bool must_exist)
{
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        if (must_exist) throw ConfigError("cannot read " + path);
        return;
    }
    std::stringstream raw;
    raw << file.rdbuf();
    std::istringstream in(Swap(raw.str(), "%", kPercentMarker));
    try {
        po::store(po::parse_config_file(in, desc, false), vm);
    } catch (const po::unknown_option& e) {
        throw ConfigError(path + ": unknown key '" + Swap(e.get_option_name(), kPercentMarker, "%") + "'");
    } catch (const po::error& e) {
        throw ConfigError(path + ": " + Swap(e.what(), kPercentMarker, "%"));
    }
}

}  // namespace

std::vector<std::string> ConfigKeyNames()
{
    std::vector<std::string> names;
    for (const Key& k : kKeys) names.emplace_back(k.name);
    return names;
}

std::string ConfigKeysHelp()
{
    std::ostringstream out;
    std::string section;
    for (const Key& k : kKeys) {
        std::string name = k.name;
        std::string sec = name.substr(0, name.find('.'));
        if (sec != section) {
            out << "  [" << sec << "]\n";
            section = sec;
        }
        std::string line = "    " + name.substr(sec.size() + 1) + " = " + k.default_text;
        if (line.size() < 38) line.resize(38, ' ');
        out << line << " " << k.meaning << "\n";
    }
    return out.str();
}

Config LoadConfig(const std::string& path, const std::map<std::string, std::string>& overrides)
{
    po::options_description desc = Describe(false);
    po::variables_map vm;
    // The first value stored for a key wins: command line, then environment, then the file.
    std::vector<std::string> args;
    for (const auto& [key, value] : overrides) {
        if (!desc.find_nothrow(key, false)) throw ConfigError("unknown config key '" + key + "'");
        args.push_back("--" + key + "=" + value);
    }
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::store(po::parse_environment(desc,
                                    [&desc](const std::string& env) -> std::string {
                                        if (env == "RALPH_OPENCODE") return "server.opencode";
                                        if (env.rfind("RALPH_SERVER_", 0) != 0 && env.rfind("RALPH_RUN_", 0) != 0 &&
                                            env.rfind("RALPH_DAEMON_", 0) != 0 && env.rfind("RALPH_HOOKS_", 0) != 0)
                                            return "";
                                        std::string key;
                                        for (char c : env.substr(6)) key += static_cast<char>(std::tolower(c));
                                        key[key.find('_')] = '.';
                                        return desc.find_nothrow(key, false) ? key : "";
                                    }),
              vm);
    StoreFile(path, desc, vm, false);

    Config config;
    config.path = path;
    for (const auto& [key, value] : vm) {
        const std::string v = FileValue(value);
        if (key.rfind("run.", 0) == 0 || key.rfind("hooks.", 0) == 0) ApplyRunSetting(config.run, key, v);
        else if (key == "daemon.max_running") config.daemon.max_running = ToInt(key, v, 0, 100000);
        else ApplyServerKey(config.server, key, v);
    }
    if (config.server.mode == "external" && config.server.url.empty())
        throw ConfigError("server.mode is external but server.url is empty: set server.url to the server's address");
    return config;
}

std::map<std::string, std::string> ConfigFileValues(const std::string& path)
{
    po::variables_map vm;
    StoreFile(path, Describe(false), vm, false);
    std::map<std::string, std::string> values;
    for (const auto& [key, value] : vm) values[key] = FileValue(value);
    return values;
}

RunSettings ApplyTaskIni(const RunSettings& base, const std::string& ini_path)
{
    po::options_description desc = Describe(true);
    po::variables_map vm;
    StoreFile(ini_path, desc, vm, true);
    RunSettings run = base;
    for (const auto& [key, value] : vm) ApplyRunSetting(run, key, FileValue(value));
    return run;
}

}  // namespace ralph
