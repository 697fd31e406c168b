#include "bench/scenarios.h"

#include "bench/scenario_util.h"

#include "bench/floor_client.h"
#include "bench/top_probe.h"
#include "common/rpc_client.h"
#include "daemon/store.h"


#include <atomic>
#include <csignal>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

namespace ralph::bench {

namespace fs = std::filesystem;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {
std::atomic<bool> g_interrupted{false};
}  // namespace

void CheckInterrupted()
{
    if (g_interrupted) throw std::runtime_error("interrupted");
}

void Sleep(std::chrono::steady_clock::duration d)
{
    auto until = SteadyClock::now() + d;
    while (SteadyClock::now() < until) {
        CheckInterrupted();
        std::this_thread::sleep_for(std::min<SteadyClock::duration>(until - SteadyClock::now(), milliseconds(100)));
    }
}

double MsSince(SteadyClock::time_point t) { return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count(); }

void Progress(const std::string& text) { std::cerr << "[bench] " << text << std::endl; }

double Mb(long kb) { return static_cast<double>(kb) / 1024.0; }

std::string RandomWord()
{
    std::random_device rd;
    std::ostringstream s;
    s << std::hex << rd() << rd();
    return s.str();
}

/// ralphd.conf for a managed server on ports of its own.
std::string ManagedConfig(World& world, const std::string& extra)
{
    int port = world.FreePort();
    // The benchmark's loops change nothing on purpose: no_progress must not end them early.
    return "[run]\nmax_idle_iterations = 0\n[server]\nport = " + std::to_string(port) + "\nport_range = " +
           std::to_string(port) + "-" + std::to_string(port + 20) + "\n" + extra;
}

int64_t Int(const json::value& v) { return v.is_int64() ? v.as_int64() : v.is_uint64() ? static_cast<int64_t>(v.as_uint64()) : 0; }

int64_t WaitRunsEnd(Ralphd& ralphd, const std::vector<int64_t>& ids, std::chrono::seconds timeout)
{
    auto deadline = SteadyClock::now() + timeout;
    int64_t last_end = 0;
    for (int64_t id : ids) {
        for (;;) {
            CheckInterrupted();
            if (SteadyClock::now() > deadline) throw std::runtime_error("runs did not end in time");
            json::value run = ralphd.Call("run.get", json::object{{"run", id}});
            if (std::string(run.at("status").as_string()) != "running") {
                last_end = std::max(last_end, Int(run.at("ended_at")));
                break;
            }
            std::this_thread::sleep_for(milliseconds(200));
        }
    }
    return last_end;
}


bool Interrupted() { return g_interrupted; }

void InstallInterruptHandler()
{
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_interrupted = true; };
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

// ---------------------------------------------------------------------------------------------
// 1. Per-iteration cost: ralph vs the floor (the same HTTP sequence, nothing else) vs a fresh
//    `opencode run` per iteration, against one opencode server and the same scripted model.

void ScenarioIteration(World& world, const Options& o, Report& report)
{
    const std::string S = "1. Per-iteration cost (" + std::to_string(o.iterations) + " TEXTONLY iterations)";
    Progress(S);
    std::string project = world.MakeProject("p1");
    world.AddTask(project, "bench", kTextOnlyPrompt);

    // One server for (a) and (b): ralphd uses it in external mode, the floor client directly.
    OpencodeServer server(world, "s1-opencode", RandomWord());
    Ralphd ralphd(world, "s1-ralphd",
                  "[run]\nmax_idle_iterations = 0\n[server]\nmode = external\nurl = " + server.url() + "\npassword = " + server.password() + "\n");
    FloorOptions fo;
    fo.server.port = server.port();
    fo.server.password = server.password();
    fo.directory = project;
    fo.prompt = kTextOnlyPrompt;
    fo.title = "ralph: bench floor";
    fo.iterations = o.iterations;

    // Warm-up, not counted: the first prompt in a directory bootstraps opencode's instance (~1 s).
    Progress("warm-up");
    ralphd.Ralph({"run", "bench", "-n", "1", "-f"}, project);
    FloorOptions warm = fo;
    warm.iterations = 2;
    RunFloor(warm);

    std::vector<double> a_cycle, a_recorded, a_between, a_wall_per_iter, a_client_cpu_ms, a_daemon_cpu_ms, a1_daemon_cpu_ms;
    std::vector<double> b_cycle, b_total, b_wall_per_iter, b_cpu_per_iter, b_create, b_prompt, b_idle, b_messages;
    std::vector<double> ratio_rounds, control_rounds, control_cycle;
    // (a) ralph run -n N -f, as a user types it; returns the round's cycles.
    auto run_ralph = [&](int round) {
        Progress("round " + std::to_string(round) + ": ralph run -n " + std::to_string(o.iterations) + " -f");
        double cpu0 = ExactCpuSeconds(ralphd.pid());
        Finished a = ralphd.Ralph({"run", "bench", "-n", std::to_string(o.iterations), "-f"}, project);
        double cpu1 = ExactCpuSeconds(ralphd.pid());
        if (a.code != 4) throw std::runtime_error("ralph run -f exited " + std::to_string(a.code) + ", expected 4 (stopped)");
        json::value shown = ralphd.RalphJson({"show", "bench"}, project);
        const json::array& its = shown.at("iterations").as_array();
        if (static_cast<int>(its.size()) != o.iterations) throw std::runtime_error("ralph recorded a wrong number of iterations");
        std::vector<double> cycles;
        for (std::size_t i = 0; i < its.size(); ++i) {
            if (std::string(its[i].at("outcome").as_string()) != "continue")
                throw std::runtime_error("iteration " + std::to_string(i + 1) + " of ralph's run did not continue: " +
                                         json::serialize(its[i]));
            a_recorded.push_back(static_cast<double>(Int(its[i].at("ended_at")) - Int(its[i].at("started_at"))));
            if (i > 0) {
                a_between.push_back(static_cast<double>(Int(its[i].at("started_at")) - Int(its[i - 1].at("ended_at"))));
                cycles.push_back(static_cast<double>(Int(its[i].at("started_at")) - Int(its[i - 1].at("started_at"))));
            }
        }
        a_cycle.insert(a_cycle.end(), cycles.begin(), cycles.end());
        a_wall_per_iter.push_back(a.wall_ms / o.iterations);
        a_client_cpu_ms.push_back(a.cpu_s * 1000 / o.iterations);
        a_daemon_cpu_ms.push_back((cpu1 - cpu0) * 1000 / o.iterations);
        return cycles;
    };
    // (a1) a one-iteration run: what a run costs ralphd besides its iterations (the task's checks,
    // the base snapshot, the run's start and end), so that the cost of one more iteration can be
    // told apart from that: ((a) run − (a1) run) ÷ (N − 1).
    auto run_ralph_once = [&]() {
        double cpu0 = ExactCpuSeconds(ralphd.pid());
        Finished a = ralphd.Ralph({"run", "bench", "-n", "1", "-f"}, project);
        if (a.code != 4) throw std::runtime_error("ralph run -n 1 -f exited " + std::to_string(a.code) + ", expected 4 (stopped)");
        a1_daemon_cpu_ms.push_back((ExactCpuSeconds(ralphd.pid()) - cpu0) * 1000);
    };
    // (b) the floor: the same requests, nothing else. `control`: a second floor run of the round,
    // kept apart, to show how far two runs of the very same client differ on this machine.
    auto run_floor = [&](int round, bool control) {
        Progress("round " + std::to_string(round) + (control ? ": floor client again (control)" : ": floor client"));
        FloorResult b = RunFloor(fo);
        if (!b.error.empty()) throw std::runtime_error("floor client: " + b.error);
        std::vector<double> cycles;
        for (std::size_t i = 0; i < b.iterations.size(); ++i) {
            if (!b.iterations[i].ok) throw std::runtime_error("floor iteration " + std::to_string(i + 1) + " failed");
            if (i > 0) cycles.push_back((b.iterations[i].start_s - b.iterations[i - 1].start_s) * 1000);
            if (control) continue;
            b_total.push_back(b.iterations[i].total_ms);
            b_create.push_back(b.iterations[i].create_ms);
            b_prompt.push_back(b.iterations[i].prompt_ms);
            b_idle.push_back(b.iterations[i].idle_ms);
            b_messages.push_back(b.iterations[i].messages_ms);
        }
        if (control) {
            control_cycle.insert(control_cycle.end(), cycles.begin(), cycles.end());
        } else {
            b_cycle.insert(b_cycle.end(), cycles.begin(), cycles.end());
            b_wall_per_iter.push_back(b.wall_ms / o.iterations);
            b_cpu_per_iter.push_back(b.cpu_ms / o.iterations);
        }
        return cycles;
    };
    // (b') the floor parsing only session.idle: its CPU, a bound from below; not timed.
    std::vector<double> b_idle_only_cpu_per_iter;
    auto run_floor_idle_only = [&](int round) {
        Progress("round " + std::to_string(round) + ": floor client parsing only session.idle");
        FloorOptions lean = fo;
        lean.parse_only_idle = true;
        FloorResult b = RunFloor(lean);
        if (!b.error.empty()) throw std::runtime_error("floor client: " + b.error);
        b_idle_only_cpu_per_iter.push_back(b.cpu_ms / o.iterations);
    };
    for (int round = 1; round <= o.rounds; ++round) {
        CheckInterrupted();
        // The order turns each round, so that no way always goes first or last.
        std::vector<double> ra, rb, rc;
        for (int k = 0; k < 3; ++k) {
            switch ((round - 1 + k) % 3) {
            case 0:
                ra = run_ralph(round);
                run_ralph_once();
                break;
            case 1: rb = run_floor(round, false); break;
            case 2:
                rc = run_floor(round, true);
                run_floor_idle_only(round);
                break;
            }
        }
        ratio_rounds.push_back(Summarize(ra).median / Summarize(rb).median);
        control_rounds.push_back(Summarize(rc).median / Summarize(rb).median);
    }

    // (c) what other loop runners do: a fresh `opencode run` (its own server) per iteration.
    Progress("opencode run x " + std::to_string(o.iterations));
    std::vector<double> c_wall, c_rss;
    RunTimed({world.bin().opencode, "run", kTextOnlyPrompt}, world.env(), project, "/dev/null", std::chrono::minutes(2));
    for (int i = 0; i < o.iterations; ++i) {
        CheckInterrupted();
        Finished c = RunTimed({world.bin().opencode, "run", kTextOnlyPrompt}, world.env(), project,
                              world.root() + "/opencode-run.out", std::chrono::minutes(2));
        if (c.code != 0) throw std::runtime_error("opencode run exited " + std::to_string(c.code));
        c_wall.push_back(c.wall_ms);
        c_rss.push_back(Mb(c.maxrss_kb));
    }

    Summary sa = Summarize(a_cycle), sb = Summarize(b_cycle), sc = Summarize(c_wall);
    report.Add({"iteration.ralph_ms", S, "(a) `ralph run -n " + std::to_string(o.iterations) + " -f`: one iteration (start to next start, ralph's records)",
                "ms", sa, true, {}, ""});
    report.Add({"iteration.floor_ms", S, "(b) floor: the same HTTP sequence, minimal C++ client", "ms", sb, true, {}, ""});
    report.Add({"iteration.opencode_run_ms", S, "(c) a fresh `opencode run` per iteration (whole process)", "ms", sc, true,
                {}, ""});
    report.Add({"iteration.ratio_a_b", S, "(a)/(b): ralph over the floor, medians", "×", Single(sa.median / sb.median),
                false, AtMost(1.05, "≤ 1.05"), ""});
    report.Add({"iteration.ratio_a_b_rounds", S, "(a)/(b) per round (alternating rounds)", "×", Summarize(ratio_rounds),
                false, {}, ""});
    report.Add({"iteration.control_ratio", S, "control: the floor over itself (a second floor run), medians", "×",
                Single(Summarize(control_cycle).median / sb.median), false, {}, ""});
    report.Add({"iteration.control_ratio_rounds", S, "control per round: how far two runs of one client differ here", "×",
                Summarize(control_rounds), false, {}, ""});
    report.Add({"iteration.ratio_c_a", S, "(c)/(a): `opencode run` over ralph, medians", "×", Single(sc.median / sa.median),
                false, AtLeast(5, "≥ 5"), ""});
    const double per_run = Summarize(a_daemon_cpu_ms).median * o.iterations, once = Summarize(a1_daemon_cpu_ms).median;
    const double per_further = (per_run - once) / std::max(1, o.iterations - 1);
    report.Add({"iteration.ralphd_cpu_ms", S, "`ralphd` CPU per iteration: whole run ÷ iterations (schedstat, ns)", "ms",
                Summarize(a_daemon_cpu_ms), false, {}, ""});
    report.Add({"iteration.ralphd_cpu_share", S, "`ralphd` CPU per iteration, whole run ÷ iterations, ÷ median (b)",
                "%", Single(Summarize(a_daemon_cpu_ms).median / sb.median * 100), false, {}, ""});
    report.Add({"iteration.ralphd_cpu_one_run_ms", S, "`ralphd` CPU of a whole `ralph run -n 1 -f` (checks, base snapshot, one iteration, end)",
                "ms", Summarize(a1_daemon_cpu_ms), false, {}, ""});
    report.Add({"iteration.ralphd_cpu_further_ms", S, "`ralphd` CPU per further iteration: (run of N − run of 1) ÷ (N − 1), medians",
                "ms", Single(per_further), false, {}, ""});
    report.Add({"iteration.ralphd_cpu_further_share", S, "`ralphd` CPU per further iteration ÷ median (b)", "%",
                Single(per_further / sb.median * 100), false, AtMost(0.3, "≤ 0.3 %"), ""});
    // What the same HTTP sequence costs a client that does nothing else: a bound from below for
    // anything that speaks to opencode this way.
    const double floor_cpu = Summarize(b_cpu_per_iter).median;
    report.Add({"iteration.floor_cpu_ms", S, "(b) the floor client's own CPU per iteration", "ms", Summarize(b_cpu_per_iter),
                false, {}, ""});
    report.Add({"iteration.floor_cpu_share", S, "(b) the floor client's CPU per iteration ÷ median (b)", "%",
                Single(floor_cpu / sb.median * 100), false, {}, ""});
    report.Add({"iteration.floor_idle_only_cpu_ms", S, "(b') the floor client parsing only `session.idle`: CPU per iteration",
                "ms", Summarize(b_idle_only_cpu_per_iter), false, {}, ""});
    report.Add({"iteration.floor_idle_only_cpu_share", S, "(b') its CPU per iteration ÷ median (b)", "%",
                Single(Summarize(b_idle_only_cpu_per_iter).median / sb.median * 100), false, {}, ""});
    report.Add({"iteration.ralphd_cpu_over_floor_cpu", S, "`ralphd` CPU per further iteration ÷ the floor client's, medians",
                "×", Single(per_further / floor_cpu), false, {}, ""});
    report.Add({"iteration.client_cpu_ms", S, "`ralph run -f` client CPU per iteration", "ms", Summarize(a_client_cpu_ms),
                false, {}, ""});
    report.Add({"iteration.ralph_wall_per_iteration_ms", S, "(a) whole `ralph run -f` process ÷ iterations", "ms",
                Summarize(a_wall_per_iter), false, {}, ""});
    report.Add({"iteration.floor_wall_per_iteration_ms", S, "(b) whole floor run ÷ iterations", "ms",
                Summarize(b_wall_per_iter), false, {}, ""});
    report.Add({"iteration.ralph_recorded_ms", S, "(a) iteration as recorded (session created to messages read)", "ms",
                Summarize(a_recorded), true, {}, ""});
    report.Add({"iteration.floor_total_ms", S, "(b) iteration, POST /session to messages read", "ms", Summarize(b_total),
                true, {}, ""});
    // Between two iterations ralph records the end, decides, renders the prompt and creates the
    // next session; the floor only creates the session. Short spans, so less exposed to opencode's
    // variance than whole iterations.
    Summary between = Summarize(a_between), create = Summarize(b_create);
    report.Add({"iteration.ralph_between_ms", S, "(a) between iterations: one's end recorded → next one's start recorded",
                "ms", between, true, {}, ""});
    report.Add({"iteration.floor_create_ms", S, "(b) `POST /session`", "ms", create, true, {}, ""});
    report.Add({"iteration.ralph_between_overhead_ms", S, "ralph's own time between iterations: (a) between − (b) POST /session, medians",
                "ms", Single(between.median - create.median), false, {}, ""});
    report.Add({"iteration.floor_prompt_ms", S, "(b) `POST prompt_async`", "ms", Summarize(b_prompt), true, {}, ""});
    report.Add({"iteration.floor_idle_ms", S, "(b) prompt_async answered → `session.idle`", "ms", Summarize(b_idle), true,
                {}, ""});
    report.Add({"iteration.floor_messages_ms", S, "(b) `GET /session/{id}/message`", "ms", Summarize(b_messages), true, {},
                ""});
    report.Add({"iteration.opencode_run_rss_mb", S, "(c) peak RSS of one `opencode run`", "MB", Summarize(c_rss), false,
                {}, ""});
}

// ---------------------------------------------------------------------------------------------
// 3. Socket API: daemon.ping, sequential and with concurrent clients.

void ScenarioSocket(World& world, const Options& o, Report& report)
{
    const std::string S = "3. Socket API (`daemon.ping`)";
    Progress(S);
    Ralphd ralphd(world, "s3-ralphd", ManagedConfig(world));
    {
        RpcClient c(ralphd.socket());
        for (int i = 0; i < 1000; ++i) c.Call("daemon.ping");
        std::vector<double> us;
        us.reserve(static_cast<std::size_t>(o.pings));
        for (int i = 0; i < o.pings; ++i) {
            auto t = SteadyClock::now();
            c.Call("daemon.ping");
            us.push_back(std::chrono::duration<double, std::micro>(SteadyClock::now() - t).count());
        }
        report.Add({"ping.sequential_us", S, "round trip, sequential on one connection", "µs", Summarize(us), true,
                    AtMost(100, "p50 ≤ 100 µs"), ""});
    }
    for (int clients : {1, 16, 64}) {
        CheckInterrupted();
        std::vector<double> rates;
        for (int rep = 0; rep < 3; ++rep) {
            std::vector<std::unique_ptr<RpcClient>> conns;
            for (int i = 0; i < clients; ++i) conns.push_back(std::make_unique<RpcClient>(ralphd.socket()));
            std::atomic<bool> go{false}, stop{false};
            std::atomic<long> calls{0};
            std::vector<std::thread> threads;
            for (auto& c : conns) {
                threads.emplace_back([&, conn = c.get()] {
                    while (!go) std::this_thread::yield();
                    long n = 0;
                    while (!stop) {
                        conn->Call("daemon.ping");
                        ++n;
                    }
                    calls += n;
                });
            }
            auto t = SteadyClock::now();
            go = true;
            std::this_thread::sleep_for(std::chrono::duration<double>(o.throughput_seconds));
            stop = true;
            double elapsed = std::chrono::duration<double>(SteadyClock::now() - t).count();
            for (auto& th : threads) th.join();
            rates.push_back(static_cast<double>(calls) / elapsed);
        }
        std::optional<Goal> goal;
        if (clients == 16) goal = AtLeast(20000, "≥ 20 000 calls/s");
        report.Add({"ping.throughput_" + std::to_string(clients), S,
                    "throughput, " + std::to_string(clients) + " concurrent client" + (clients > 1 ? "s" : ""), "calls/s",
                    Summarize(rates), false, goal, ""});
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Many loops on the one server, and 5. the same daemon idle afterwards.

namespace {

struct Sampler {
    /// Samples a process's RSS every `period` on a thread of its own; max() after stop().
    Sampler(pid_t pid, milliseconds period) : pid_(pid)
    {
        thread_ = std::thread([this, period] {
            while (!stop_) {
                long kb = StatusKb(pid_, "VmRSS");
                if (kb > max_kb_) max_kb_ = kb;
                std::this_thread::sleep_for(period);
            }
        });
    }
    ~Sampler() { Stop(); }
    void Stop()
    {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    long max_kb() const { return max_kb_; }

private:
    pid_t pid_;
    std::atomic<bool> stop_{false};
    std::atomic<long> max_kb_{0};
    std::thread thread_;
};

/// `opencode serve` processes whose parent is `parent`.
int CountServersOf(pid_t parent)
{
    int count = 0;
    for (const auto& entry : fs::directory_iterator("/proc")) {
        std::string name = entry.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string stat = ReadFile(entry.path() / "stat");
        auto close = stat.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream fields(stat.substr(close + 2));
        std::string state;
        pid_t ppid = 0;
        fields >> state >> ppid;
        if (ppid != parent || state == "Z") continue;
        std::string cmdline = ReadFile(entry.path() / "cmdline");
        if (cmdline.find("opencode") != std::string::npos && cmdline.find(std::string("\0serve\0", 7)) != std::string::npos)
            ++count;
    }
    return count;
}


}  // namespace

void ScenarioLoopsAndIdle(World& world, const Options& o, Report& report)
{
    const std::string S4 = "4. Many loops (" + std::to_string(o.loops) + " runs × " + std::to_string(o.loop_iterations) +
                           " iterations, two projects, one server)";
    const std::string S5 = "5. Idle (" + std::to_string(o.idle_seconds) + " s, server running, no runs)";
    Progress(S4);
    std::string pa = world.MakeProject("pA"), pb = world.MakeProject("pB");
    std::vector<std::pair<std::string, std::string>> tasks;  // project, task
    for (int i = 1; i <= o.loops; ++i) {
        char name[16];
        std::snprintf(name, sizeof name, "t%02d", (i + 1) / 2);
        const std::string& project = i % 2 ? pa : pb;
        world.AddTask(project, name, kTextOnlyPrompt);
        tasks.emplace_back(project, name);
    }

    Ralphd ralphd(world, "s4-ralphd", ManagedConfig(world));
    const double fresh_rss_mb = Mb(StatusKb(ralphd.pid(), "VmRSS"));
    int server_pid = ralphd.StartServer();
    // Warm-up, not counted: bootstrap opencode's instance of each project.
    for (const std::string& p : {pa, pb}) ralphd.Ralph({"run", tasks[0].second, "-n", "1", "-f"}, p);

    auto start_runs = [&](std::size_t count) {
        std::vector<int64_t> ids;
        for (std::size_t i = 0; i < count; ++i) {
            json::value run = ralphd.RalphJson({"run", tasks[i].second, "-n", std::to_string(o.loop_iterations)}, tasks[i].first);
            ids.push_back(Int(run.at("id")));
        }
        return ids;
    };
    auto check_runs = [&](const std::vector<int64_t>& ids) {
        for (int64_t id : ids) {
            json::value run = ralphd.Call("run.get", json::object{{"run", id}});
            if (std::string(run.at("reason").as_string()) != "max_iterations")
                throw std::runtime_error("run " + std::to_string(id) + " ended " + json::serialize(run.at("reason")));
            for (const json::value& it : run.at("iterations").as_array())
                if (std::string(it.at("outcome").as_string()) != "continue")
                    throw std::runtime_error("run " + std::to_string(id) + " had an iteration " + json::serialize(it));
        }
    };
    struct Measured {
        double wall_s, ralphd_peak_mb, ralphd_cpu_s, server_peak_mb, server_cpu_s;
        int servers;  ///< opencode servers ralphd ran while the runs were under way
        double top_cpu_fraction{-1};  ///< `ralph top`'s CPU over the window, of one core (-1: no top)
    };
    auto measure = [&](std::size_t count, bool with_top) {
        // `ralph top` watches the runs from a terminal of its own (tmux), as a person would.
        std::unique_ptr<TopProbe> top;
        if (with_top) top = std::make_unique<TopProbe>(world.bin().ralph, ralphd.env());
        if (top && top->pid() == 0) throw std::runtime_error("ralph top did not start in tmux");
        ResetPeakRss(ralphd.pid());
        Sampler server_rss(server_pid, milliseconds(100));
        double cpu0 = ExactCpuSeconds(ralphd.pid()), server_cpu0 = CpuSeconds(server_pid);
        double top_cpu0 = top ? CpuSeconds(top->pid()) : 0, top_t0 = NowSeconds();
        int64_t t0 = UnixMillis();
        std::vector<int64_t> ids = start_runs(count);
        int servers = CountServersOf(ralphd.pid());
        int64_t end = WaitRunsEnd(ralphd, ids, std::chrono::seconds(600));
        double cpu1 = ExactCpuSeconds(ralphd.pid()), server_cpu1 = CpuSeconds(server_pid);
        double top_fraction = top ? (CpuSeconds(top->pid()) - top_cpu0) / (NowSeconds() - top_t0) : -1;
        server_rss.Stop();
        check_runs(ids);
        return Measured{static_cast<double>(end - t0) / 1000, Mb(StatusKb(ralphd.pid(), "VmHWM")), cpu1 - cpu0,
                        Mb(server_rss.max_kb()), server_cpu1 - server_cpu0, servers, top_fraction};
    };
    Progress("1 run x " + std::to_string(o.loop_iterations));
    Measured one = measure(1, false);
    Progress(std::to_string(o.loops) + " runs x " + std::to_string(o.loop_iterations) + " at once");
    Measured many = measure(tasks.size(), true);

    // What one server per run would cost: a fresh idle server, measured, times the runs.
    Progress("one idle opencode server, for comparison");
    double idle_server_mb = 0;
    {
        OpencodeServer lone(world, "s4-idle-opencode", RandomWord());
        Sleep(seconds(5));
        idle_server_mb = Mb(StatusKb(lone.pid(), "VmRSS"));
    }
    const double n = static_cast<double>(o.loops), iters = n * o.loop_iterations;
    report.Add({"loops.wall_one_s", S4, "1 run × " + std::to_string(o.loop_iterations) + ": wall time", "s",
                Single(one.wall_s), false, {}, ""});
    report.Add({"loops.wall_many_s", S4, std::to_string(o.loops) + " runs at once: wall time until the last ends", "s",
                Single(many.wall_s), false, {}, ""});
    report.Add({"loops.iterations_per_s_many", S4, std::to_string(o.loops) + " runs at once: iterations per second",
                "/s", Single(iters / many.wall_s), false, {}, ""});
    report.Add({"loops.iterations_per_s_one", S4, "1 run: iterations per second", "/s",
                Single(o.loop_iterations / one.wall_s), false, {}, ""});
    report.Add({"loops.ralphd_peak_rss_one_mb", S4, "`ralphd` peak RSS (VmHWM), 1 run", "MB", Single(one.ralphd_peak_mb),
                false, {}, ""});
    report.Add({"loops.ralphd_peak_rss_many_mb", S4, "`ralphd` peak RSS (VmHWM), " + std::to_string(o.loops) + " runs",
                "MB", Single(many.ralphd_peak_mb), false, AtMost(30, "≤ 30 MB"), ""});
    report.Add({"loops.ralphd_cpu_one_s", S4, "`ralphd` CPU, 1 run", "s", Single(one.ralphd_cpu_s), false, {}, ""});
    report.Add({"loops.ralphd_cpu_many_s", S4, "`ralphd` CPU, " + std::to_string(o.loops) + " runs", "s",
                Single(many.ralphd_cpu_s), false, {}, ""});
    report.Add({"loops.ralphd_cpu_per_iteration_ms", S4, "`ralphd` CPU per iteration, " + std::to_string(o.loops) + " runs",
                "ms", Single(many.ralphd_cpu_s * 1000 / iters), false, {}, ""});
    report.Add({"loops.top_cpu_percent", S4,
                "`ralph top` CPU while the " + std::to_string(o.loops) + " runs go (in tmux, 80x24), of one core", "%",
                Single(many.top_cpu_fraction * 100), false, AtMost(1, "≤ 1 %"), ""});
    report.Add({"loops.server_cpu_one_s", S4, "the opencode server's CPU, 1 run", "s", Single(one.server_cpu_s), false, {},
                ""});
    report.Add({"loops.server_cpu_many_s", S4, "the opencode server's CPU, " + std::to_string(o.loops) + " runs", "s",
                Single(many.server_cpu_s), false, {}, ""});
    report.Add({"loops.server_rss_one_mb", S4, "the one opencode server's peak RSS, 1 run", "MB",
                Single(one.server_peak_mb), false, {}, ""});
    report.Add({"loops.server_rss_many_mb", S4, "the one opencode server's peak RSS, " + std::to_string(o.loops) + " runs",
                "MB", Single(many.server_peak_mb), false, {}, ""});
    report.Add({"loops.servers", S4, "opencode servers serving the " + std::to_string(o.loops) + " runs", "", Single(many.servers),
                false, AtMost(1, "one, not twenty"), ""});
    report.Add({"loops.idle_server_rss_mb", S4, "one fresh idle `opencode serve`", "MB", Single(idle_server_mb), false, {},
                ""});
    report.Add({"loops.per_run_servers_mb", S4,
                std::to_string(o.loops) + " per-run servers (idle RSS × " + std::to_string(o.loops) + ")", "MB",
                Single(idle_server_mb * n), false, {}, ""});
    report.Add({"loops.memory_saving", S4,
                std::to_string(o.loops) + " per-run servers over the one server + `ralphd`", "×",
                Single(idle_server_mb * n / (many.server_peak_mb + many.ralphd_peak_mb)), false, {}, ""});

    // 5. The same daemon with its server running and nothing to do.
    Progress(S5);
    Sleep(seconds(5));
    ResetPeakRss(ralphd.pid());
    Sampler rss(ralphd.pid(), milliseconds(1000));
    double cpu0 = ExactCpuSeconds(ralphd.pid()), server_cpu0 = CpuSeconds(server_pid);
    auto t0 = SteadyClock::now();
    Sleep(seconds(o.idle_seconds));
    double elapsed = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    double cpu = ExactCpuSeconds(ralphd.pid()) - cpu0, server_cpu = CpuSeconds(server_pid) - server_cpu0;
    rss.Stop();
    report.Add({"idle.ralphd_rss_fresh_mb", S5, "`ralphd` RSS just after it started, before any run", "MB",
                Single(fresh_rss_mb), false, {}, ""});
    report.Add({"idle.ralphd_rss_mb", S5, "`ralphd` RSS, idle after the loops above", "MB", Single(Mb(rss.max_kb())), false,
                AtMost(10, "≤ 10 MB"), ""});
    report.Add({"idle.ralphd_cpu_percent", S5, "`ralphd` CPU", "%", Single(cpu / elapsed * 100), false,
                AtMost(0.1, "≤ 0.1 %"), ""});
    report.Add({"idle.server_rss_mb", S5, "the opencode server's RSS", "MB", Single(Mb(StatusKb(server_pid, "VmRSS"))),
                false, {}, ""});
    report.Add({"idle.server_cpu_percent", S5, "the opencode server's CPU", "%", Single(server_cpu / elapsed * 100), false,
                {}, ""});
}

}  // namespace ralph::bench
