// Scenario 6 of docs/performance.md: how soon a killed server is noticed and replaced.
#include "bench/scenario_util.h"
#include "bench/scenarios.h"

#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

namespace ralph::bench {

namespace fs = std::filesystem;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ---------------------------------------------------------------------------------------------
// 6. Detection: kill -9 the managed server; how soon ralph notices, and has a healthy one again.

namespace {

/// Unix milliseconds of the first ralphd log line at or after `since` that contains `needle`.
std::optional<int64_t> LogStamp(const std::string& log, const std::string& needle, int64_t since)
{
    std::istringstream in(log);
    std::string line;
    while (std::getline(in, line)) {
        if (line.find(needle) == std::string::npos || line.size() < 24) continue;
        tm t{};
        int ms = 0;
        if (std::sscanf(line.c_str(), "%d-%d-%d %d:%d:%d.%d", &t.tm_year, &t.tm_mon, &t.tm_mday, &t.tm_hour, &t.tm_min,
                        &t.tm_sec, &ms) != 7)
            continue;
        t.tm_year -= 1900;
        t.tm_mon -= 1;
        t.tm_isdst = -1;
        int64_t at = static_cast<int64_t>(mktime(&t)) * 1000 + ms;
        if (at >= since) return at;
    }
    return std::nullopt;
}

}  // namespace

void ScenarioDetection(World& world, const Options& o, Report& report)
{
    const std::string S = "6. Detection (`kill -9` of the server)";
    Progress(S);
    // Every restart waits the initial back-off (1 s), as after a first crash; without this the
    // back-off doubles with each kill of the series and the start limit would end it.
    Ralphd ralphd(world, "s6-ralphd", ManagedConfig(world, "restart_backoff_max = 1s\nstart_limit_burst = 100\n"));
    ralphd.StartServer();
    std::vector<double> noticed, noticed_log, healthy, exited;
    RpcClient client(ralphd.socket());
    for (int k = 0; k < o.kills; ++k) {
        CheckInterrupted();
        Sleep(seconds(2));
        json::object st = client.Call("server.status")["result"].as_object();
        if (std::string(st.at("state").as_string()) != "running" || !st.at("healthy").as_bool())
            throw std::runtime_error("the server is not running before kill " + std::to_string(k + 1));
        int pid = static_cast<int>(Int(st.at("pid")));
        // The kernel's own share: a pidfd turns readable once the process has exited (its memory
        // torn down), which ralph cannot learn any sooner.
        int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
        std::atomic<double> exited_ms{-1};
        int64_t killed_at = UnixMillis();
        auto t0 = SteadyClock::now();
        std::thread exit_watch([&] {
            pollfd p{pidfd, POLLIN, 0};
            if (pidfd >= 0 && poll(&p, 1, 30000) > 0) exited_ms = MsSince(t0);
        });
        if (kill(pid, SIGKILL) != 0) {
            exit_watch.join();
            throw std::runtime_error("kill failed");
        }
        bool seen = false;
        while (MsSince(t0) < 30000) {
            json::object s = client.Call("server.status")["result"].as_object();
            bool same = std::string(s.at("state").as_string()) == "running" && Int(s.at("pid")) == pid &&
                        s.at("healthy").as_bool();
            if (!seen && !same) {
                noticed.push_back(MsSince(t0));
                seen = true;
            }
            if (seen && std::string(s.at("state").as_string()) == "running" && s.at("healthy").as_bool() &&
                Int(s.at("pid")) != pid) {
                healthy.push_back(MsSince(t0));
                break;
            }
            std::this_thread::sleep_for(milliseconds(seen ? 10 : 1));
        }
        exit_watch.join();
        if (pidfd >= 0) close(pidfd);
        if (exited_ms >= 0) exited.push_back(exited_ms);
        if (healthy.size() != static_cast<std::size_t>(k + 1)) throw std::runtime_error("no healthy server after kill");
        if (auto at = LogStamp(ReadFile(ralphd.log_path()), "opencode server: running -> ", killed_at))
            noticed_log.push_back(static_cast<double>(*at - killed_at));
    }
    report.Add({"detect.noticed_ms", S, "kill → `server.status` no longer running (polled every 1 ms)", "ms",
                Summarize(noticed), false, AtMost(100, "≤ 100 ms"), ""});
    report.Add({"detect.exited_ms", S, "kill → the process has exited (pidfd readable; the kernel's share)", "ms",
                Summarize(exited), false, {}, ""});
    report.Add({"detect.noticed_log_ms", S, "kill → state change in the daemon log (ms stamps)", "ms",
                Summarize(noticed_log), false, {}, ""});
    report.Add({"detect.healthy_ms", S, "kill → a new healthy server (1 s back-off + start-up)", "ms", Summarize(healthy),
                false, {}, ""});
}

}  // namespace ralph::bench
