// 8. The shared server's memory (SPEC §8): one loop's whole tree (ralphd, the opencode server and
// the processes it started) beside one `opencode run` (what the other loop runners start per
// iteration), at several server.max_memory settings, with the restarts each costs; and a soak of
// many loops on one server, the server's and ralphd's memory over time written as CSV and drawn
// with gnuplot when it is installed.
#include "bench/report.h"
#include "bench/scenario_util.h"
#include "bench/scenarios.h"
#include "daemon/proc_scan.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace ralph::bench {

namespace {

namespace json = boost::json;
using namespace std::chrono;

/// Resident memory (kB) of a process and every process descending from it.
long TreeKb(pid_t root)
{
    long kb = std::max(0L, StatusKb(root, "VmRSS"));
    for (const ProcStat& d : ProcFs().Descendants(root)) kb += std::max(0L, StatusKb(d.pid, "VmRSS"));
    return kb;
}

/// Calls `sample` every `period` on a thread of its own until stopped.
class Ticker {
public:
    Ticker(milliseconds period, std::function<void()> sample)
        : thread_([this, period, sample = std::move(sample)] {
              while (!stop_) {
                  sample();
                  std::this_thread::sleep_for(period);
              }
          })
    {
    }
    ~Ticker() { Stop(); }
    void Stop()
    {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

/// The peak tree memory of one `opencode run` of one iteration, in MB.
double OpencodeRunPeakMb(World& world, const std::string& project)
{
    std::atomic<long> peak{0};
    pid_t pid = Spawn({world.bin().opencode, "run", kTextOnlyPrompt}, world.env(), project);
    auto started = steady_clock::now();
    {
        Ticker ticker(milliseconds(50), [&] { peak = std::max(peak.load(), TreeKb(pid)); });
        Finished f = Wait(pid, started, minutes(2));
        if (f.code != 0) throw std::runtime_error("opencode run exited with " + std::to_string(f.code));
    }
    return Mb(peak);
}

/// The managed server's pid: the `opencode serve` child of ralphd (0 when none).
int ServerOf(pid_t ralphd)
{
    for (const ProcStat& d : ProcFs().Descendants(ralphd))
        if (d.ppid == ralphd && ProcFs::IsOpencodeServe(ProcFs().Cmdline(d.pid))) return d.pid;
    return 0;
}

struct LoopMemory {
    double tree_peak_mb{0};     ///< ralphd + the server + its processes
    double server_peak_mb{0};   ///< the server's process group
    int restarts{0};            ///< servers seen after the first
    double seconds_per_iteration{0};
};

/// One loop of `iterations` on a ralphd whose server.max_memory is `max_memory_mb` (0: off).
LoopMemory OneLoop(World& world, const std::string& project, const std::string& name, int iterations, long max_memory_mb)
{
    Ralphd ralphd(world, name,
                  ManagedConfig(world, "max_memory = " + (max_memory_mb > 0 ? std::to_string(max_memory_mb) + "M" : "0") +
                                           "\nhealth_interval = 1s\n"));
    ralphd.StartServer();
    ralphd.Ralph({"run", "mem", "-n", "1", "-f"}, project);  // warm: the project's instance exists
    std::atomic<long> tree{0}, server{0};
    std::mutex mu;
    std::vector<int> servers;
    const pid_t daemon = ralphd.pid();
    auto t0 = steady_clock::now();
    {
        Ticker ticker(milliseconds(200), [&] {
            tree = std::max(tree.load(), TreeKb(daemon));
            if (int s = ServerOf(daemon)) {
                server = std::max(server.load(), ProcFs().GroupRss(s) / 1024);
                std::lock_guard<std::mutex> lock(mu);
                if (std::find(servers.begin(), servers.end(), s) == servers.end()) servers.push_back(s);
            }
        });
        Finished f = ralphd.Ralph({"run", "mem", "-n", std::to_string(iterations), "-f"}, project);
        if (f.code != 4) throw std::runtime_error("the loop ended with exit code " + std::to_string(f.code));
    }
    LoopMemory m;
    m.tree_peak_mb = Mb(tree);
    m.server_peak_mb = Mb(server);
    m.restarts = std::max<int>(0, static_cast<int>(servers.size()) - 1);
    m.seconds_per_iteration = duration<double>(steady_clock::now() - t0).count() / iterations;
    return m;
}

}  // namespace

void ScenarioMemory(World& world, const Options& o, Report& report)
{
    const std::string S8 = "8. The shared server's memory (one loop beside `opencode run`; a soak of " +
                           std::to_string(o.soak_loops) + " loops × " + std::to_string(o.soak_iterations / o.soak_loops) +
                           " iterations)";
    Progress(S8);
    std::string project = world.MakeProject("mem");
    world.AddTask(project, "mem", kTextOnlyPrompt);

    // What one iteration of the other loop runners holds: one `opencode run`.
    std::vector<double> run_peaks;
    OpencodeRunPeakMb(world, project);  // warm-up, not counted
    for (int i = 0; i < 3; ++i) run_peaks.push_back(OpencodeRunPeakMb(world, project));
    std::sort(run_peaks.begin(), run_peaks.end());
    const double opencode_run_mb = run_peaks[1];
    report.Add({"memory.opencode_run_peak_mb", S8, "one `opencode run` of one iteration: its peak tree RSS (median of 3)",
                "MB", Single(opencode_run_mb), false, {}, ""});

    // One loop at several limits: the trade-off between memory and restarts.
    struct Setting {
        const char* id;
        std::string label;
        long max_memory_mb;
    };
    std::vector<Setting> settings = {{"off", "server.max_memory = 0 (off)", 0}};
    for (double f : {1.0, 0.8, 0.6}) {
        long mb = static_cast<long>(opencode_run_mb * f);
        settings.push_back({f == 1.0 ? "x100" : f == 0.8 ? "x080" : "x060",
                            "server.max_memory = " + std::to_string(mb) + "M (" + std::to_string(int(f * 100)) +
                                " % of one `opencode run`)",
                            mb});
    }
    for (const Setting& s : settings) {
        Progress(std::string("one loop, ") + s.label);
        LoopMemory m = OneLoop(world, project, std::string("s8-") + s.id, o.memory_iterations, s.max_memory_mb);
        const std::string key = std::string("memory.") + s.id;
        report.Add({key + ".tree_peak_mb", S8, s.label + ": peak RSS of ralphd's whole tree, 1 loop", "MB",
                    Single(m.tree_peak_mb), false, {}, ""});
        report.Add({key + ".tree_vs_opencode_run", S8, s.label + ": that peak over one `opencode run`'s", "×",
                    Single(m.tree_peak_mb / opencode_run_mb), false, {}, ""});
        report.Add({key + ".restarts_per_100", S8, s.label + ": server restarts per 100 iterations", "",
                    Single(100.0 * m.restarts / o.memory_iterations), false, {}, ""});
        report.Add({key + ".s_per_iteration", S8, s.label + ": wall time per iteration", "s",
                    Single(m.seconds_per_iteration), false, {}, ""});
    }

    // The soak: many loops, one server, default settings; memory over time.
    Progress("soak: " + std::to_string(o.soak_loops) + " loops, " + std::to_string(o.soak_iterations) + " iterations");
    Ralphd ralphd(world, "s8-soak", ManagedConfig(world));
    ralphd.StartServer();
    std::vector<std::pair<std::string, std::string>> tasks;
    const std::string soak_projects[] = {world.MakeProject("soak0"), world.MakeProject("soak1")};
    for (int i = 0; i < o.soak_loops; ++i) {
        const std::string& p = soak_projects[i % 2];
        world.AddTask(p, "s" + std::to_string(i), kTextOnlyPrompt);
        tasks.emplace_back(p, "s" + std::to_string(i));
    }
    const std::string csv_path = world.root() + "/soak-memory.csv";
    std::ofstream csv(csv_path);
    csv << "seconds,server_mb,ralphd_mb\n";
    std::mutex mu;
    std::vector<double> server_mb, ralphd_mb;
    std::vector<int> servers;  // every server pid seen: a restart (server.max_memory, 2G by default) adds one
    auto t0 = steady_clock::now();
    std::vector<int64_t> ids;
    {
        Ticker ticker(seconds(2), [&] {
            const int server = ServerOf(ralphd.pid());
            double s = Mb(ProcFs().GroupRss(server) / 1024), d = Mb(StatusKb(ralphd.pid(), "VmRSS"));
            std::lock_guard<std::mutex> lock(mu);
            if (server && std::find(servers.begin(), servers.end(), server) == servers.end()) servers.push_back(server);
            server_mb.push_back(s);
            ralphd_mb.push_back(d);
            csv << duration<double>(steady_clock::now() - t0).count() << "," << s << "," << d << "\n" << std::flush;
        });
        const int per_loop = o.soak_iterations / o.soak_loops;
        for (const auto& [p, t] : tasks)
            ids.push_back(Int(ralphd.RalphJson({"run", t, "-n", std::to_string(per_loop)}, p).at("id")));
        for (int64_t id : ids) {
            for (;;) {
                CheckInterrupted();
                json::value run = ralphd.Call("run.get", json::object{{"run", id}});
                if (std::string(run.at("status").as_string()) != "running") break;
                std::this_thread::sleep_for(seconds(1));
            }
        }
    }
    csv.close();
    const double minutes_taken = duration<double>(steady_clock::now() - t0).count() / 60;
    auto quarter_mean = [](const std::vector<double>& v, bool last) {
        std::size_t n = std::max<std::size_t>(1, v.size() / 4);
        double sum = 0;
        for (std::size_t i = 0; i < n; ++i) sum += last ? v[v.size() - 1 - i] : v[i];
        return sum / n;
    };
    report.Add({"memory.soak_minutes", S8, "soak: wall time", "min", Single(minutes_taken), false, {}, ""});
    report.Add({"memory.soak_server_peak_mb", S8, "soak: the server's peak RSS (its process group)", "MB",
                Single(*std::max_element(server_mb.begin(), server_mb.end())), false, {}, ""});
    report.Add({"memory.soak_server_growth_mb", S8, "soak: the server's RSS, last quarter's mean minus the first's", "MB",
                Single(quarter_mean(server_mb, true) - quarter_mean(server_mb, false)), false, {}, ""});
    report.Add({"memory.soak_server_restarts", S8, "soak: server restarts (server.max_memory at its default, 2G)", "",
                Single(std::max<int>(0, static_cast<int>(servers.size()) - 1)), false, {}, ""});
    report.Add({"memory.soak_ralphd_peak_mb", S8, "soak: `ralphd` peak RSS", "MB",
                Single(*std::max_element(ralphd_mb.begin(), ralphd_mb.end())), false, {}, ""});
    report.Add({"memory.soak_ralphd_growth_mb", S8, "soak: `ralphd` RSS, last quarter's mean minus the first's", "MB",
                Single(quarter_mean(ralphd_mb, true) - quarter_mean(ralphd_mb, false)), false, {}, ""});
    // The plot, when gnuplot is there (scripts/install-deps --bench installs it).
    const std::string png = world.root() + "/soak-memory.png";
    std::string script = "set terminal png size 900,450 noenhanced; set output '" + png +
                         "'; set datafile separator ','; set key autotitle columnhead; set xlabel 'seconds'; "
                         "set ylabel 'MB'; set title 'ralph soak: " + std::to_string(o.soak_loops) + " loops, " +
                         std::to_string(o.soak_iterations) + " iterations, one opencode server'; "
                         "plot '" + csv_path + "' using 1:2 with lines lw 2, '' using 1:3 with lines lw 2";
    int code = -1;
    if (access("/usr/bin/gnuplot", X_OK) == 0) Capture({"/usr/bin/gnuplot", "-e", script}, world.env(), world.root(), &code);
    Progress(code == 0 ? "soak plot: " + png + " (data: " + csv_path + ")" : "gnuplot not available: data in " + csv_path);
}

}  // namespace ralph::bench
