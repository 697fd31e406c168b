// Daemon::Reload: `ralph daemon reload` and SIGHUP re-read ralphd.conf (SPEC §11). What changed in
// the file is applied when it can be while ralphd runs, and named with the reason when it cannot:
// a key fixed at start, or one that ralphd's environment or command line sets (those win over the
// file, and ralphd's environment is fixed when it starts).
#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/loop_engine.h"
#include "daemon/sd_notify.h"
#include "daemon/server_supervisor.h"

#include <cctype>
#include <cstdlib>
#include <ctime>
#include <set>

namespace ralph {

namespace {

/// Keys read once when ralphd starts: the supervisor sets up external mode, and the idle-stop
/// timer is started (or not) with the loop engine.
const std::set<std::string> kFixedAtStart = {"server.mode", "server.url", "server.password", "server.idle_stop"};

/// The variable of ralphd's own environment that sets `key`, or "" (as LoadConfig maps them).
std::string EnvironmentSetting(const std::string& key)
{
    if (key == "server.opencode" && std::getenv("RALPH_OPENCODE")) return "RALPH_OPENCODE";
    std::string name = "RALPH_";
    for (char c : key) name += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return std::getenv(name.c_str()) ? name : "";
}

std::string Lookup(const std::map<std::string, std::string>& values, const std::string& key)
{
    auto it = values.find(key);
    return it == values.end() ? std::string("\x01unset") : it->second;
}

}  // namespace

Daemon::ReloadReport Daemon::Reload()
{
    Config fresh = LoadConfig(options_.config_path, options_.overrides);  // throws: nothing changed yet
    std::map<std::string, std::string> file_values = ConfigFileValues(options_.config_path);

    ReloadReport report;
    for (const std::string& key : ConfigKeyNames()) {
        if (Lookup(file_values, key) == Lookup(config_file_values_, key)) continue;
        if (options_.overrides.count(key))
            report.needs_restart.emplace_back(key, "set by --set on ralphd's command line, which wins over ralphd.conf");
        else if (std::string env = EnvironmentSetting(key); !env.empty())
            report.needs_restart.emplace_back(key, "set by " + env +
                                                       " in ralphd's environment, which wins over ralphd.conf; "
                                                       "restart ralphd without it");
        else if (kFixedAtStart.count(key))
            report.needs_restart.emplace_back(key, "read only when ralphd starts");
        else
            report.applied.push_back(key);
    }

    // Everything but the keys fixed at start takes its new value (the overridden ones are unchanged).
    fresh.server.mode = config_.server.mode;
    fresh.server.url = config_.server.url;
    fresh.server.password = config_.server.password;
    fresh.server.idle_stop = config_.server.idle_stop;
    config_ = fresh;
    config_file_values_ = std::move(file_values);
    supervisor_->ApplySettings(config_.server);
    loops_->SetMaxRunning(config_.daemon.max_running);
    ApplyServerLimits();
    return report;
}

void Daemon::ApplyServerLimits()
{
    const bool managed = config_.server.mode == "managed";
    loops_->SetServerLimits(managed ? config_.server.max_memory : 0, managed ? config_.server.instance_idle : Millis(0));
}

Daemon::ReloadReport Daemon::ReloadAndLog(const std::string& why)
{
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    SdNotify("RELOADING=1\nMONOTONIC_USEC=" +
             std::to_string(static_cast<long long>(now.tv_sec) * 1000000 + now.tv_nsec / 1000));
    struct Ready {
        ~Ready() { SdNotify("READY=1\nSTATUS=serving"); }
    } ready;
    try {
        ReloadReport r = Reload();
        std::string applied, restart;
        for (const std::string& key : r.applied) applied += (applied.empty() ? "" : ", ") + key;
        for (const auto& [key, reason] : r.needs_restart)
            restart += (restart.empty() ? "" : "; ") + key + " (" + reason + ")";
        Log(LogLevel::Info) << "reloaded " << options_.config_path << " (" << why
                            << "): " << (applied.empty() ? "nothing to apply" : "applied " + applied)
                            << (restart.empty() ? "" : "; needs a restart of ralphd: " + restart);
        return r;
    } catch (const ConfigError& e) {
        Log(LogLevel::Error) << "reload (" << why << "): " << e.what() << "; nothing was changed";
        throw;
    }
}

}  // namespace ralph
