// ralph-load: many clients against one ralphd while loops run through the real opencode.
//
// In a private directory (its own HOME, XDG dirs, socket, state and the scripted model) it starts
// ralphd, runs N loops, follows each with `ralph logs <run> -f`, and lets C clients call run.list
// and daemon.ping as fast as they can for S seconds (half of them on one connection each, half
// connecting for every call, as the ralph command does). Then it stops the loops and checks:
//   - no call failed;
//   - every followed log is exactly the run's log read afterwards (`ralph logs <run>`): no event
//     dropped, none duplicated, none out of order;
// and prints the latency of each method (p50, p99, max) and the throughput.
// Exit status: 0 when all is well, 1 on an error or a dropped event, 2 for a usage error.
//
// Usage: ralph-load [--clients 64] [--loops 10] [--seconds 20] [--think MS] [--keep]
//   --think MS: each client pauses this long between calls (default 0: back to back, the worst case)
// opencode: $RALPH_OPENCODE, else the one scripts/install-opencode installs.
#include "common/rpc_client.h"
#include "common/spawn.h"

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>


namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
using ralph::ConnectionError;
using ralph::RpcClient;
using ralph::SpawnProcess;

using Env = std::map<std::string, std::string>;

std::string ReadFile(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void WriteFile(const std::string& path, const std::string& text)
{
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

/// Starts argv with the current environment overridden by `env`; stdout and stderr to files.
pid_t Spawn(const std::vector<std::string>& argv, const Env& env, const std::string& out, const std::string& err,
            const std::string& cwd = "")
{
    return SpawnProcess({argv, env, cwd, out, err});
}

/// Exit code, 128+signal, or -1 when it is still running at the deadline.
int Wait(pid_t pid, std::chrono::milliseconds timeout)
{
    auto deadline = SteadyClock::now() + timeout;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0 || SteadyClock::now() > deadline) return -1;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

int Run(const std::vector<std::string>& argv, const Env& env, const std::string& dir, std::string* out = nullptr)
{
    static int n = 0;
    std::string base = dir + "/cmd." + std::to_string(++n);
    pid_t pid = Spawn(argv, env, base + ".out", base + ".err");
    int code = Wait(pid, std::chrono::seconds(120));
    if (code == -1) {
        kill(pid, SIGKILL);
        Wait(pid, std::chrono::seconds(5));
    }
    if (out) *out = ReadFile(base + ".out");
    return code;
}

/// Latencies of one kind of call, in microseconds.
struct Samples {
    std::vector<double> us;
    void Add(SteadyClock::duration d) { us.push_back(std::chrono::duration<double, std::micro>(d).count()); }
    void Merge(const Samples& o) { us.insert(us.end(), o.us.begin(), o.us.end()); }
    double Quantile(double q)
    {
        if (us.empty()) return 0;
        std::sort(us.begin(), us.end());
        return us[std::min(us.size() - 1, static_cast<std::size_t>(q * static_cast<double>(us.size())))];
    }
};

struct Options {
    int clients{64};
    int loops{10};
    int seconds{20};
    int think_ms{0};  ///< pause between one client's calls; 0: back to back
    bool keep{false};
};

bool Pings(const std::string& socket)
{
    try {
        RpcClient c(socket);
        return c.Call("daemon.ping").contains("result");
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace

int main(int argc, char** argv)
{
    Options opt;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> int {
            if (i + 1 >= argc) {
                std::cerr << "ralph-load: " << a << " needs a value\n";
                std::exit(2);
            }
            return std::atoi(argv[++i]);
        };
        if (a == "--clients") opt.clients = next();
        else if (a == "--loops") opt.loops = next();
        else if (a == "--seconds") opt.seconds = next();
        else if (a == "--think") opt.think_ms = next();
        else if (a == "--keep") opt.keep = true;
        else {
            std::cerr << "usage: ralph-load [--clients N] [--loops N] [--seconds N] [--think MS] [--keep]\n";
            return 2;
        }
    }
    if (opt.clients < 1 || opt.loops < 1 || opt.seconds < 1) {
        std::cerr << "ralph-load: --clients, --loops and --seconds must be positive\n";
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    std::string opencode = getenv("RALPH_OPENCODE") && *getenv("RALPH_OPENCODE")
                               ? getenv("RALPH_OPENCODE")
                               : std::string(RALPH_SOURCE_DIR) + "/.deps/opencode/node_modules/.bin/opencode";
    if (access(opencode.c_str(), X_OK) != 0) {
        std::cerr << "ralph-load: opencode is not at " << opencode << " (scripts/install-opencode, or RALPH_OPENCODE)\n";
        return 1;
    }

    // The private world.
    char tmpl[] = "/tmp/ralph-load-XXXXXX";
    std::string root = mkdtemp(tmpl);
    std::string socket = root + "/run/ralphd.sock";
    Env env = {{"HOME", root + "/home"},
               {"XDG_CONFIG_HOME", root + "/config"},
               {"XDG_DATA_HOME", root + "/data"},
               {"XDG_STATE_HOME", root + "/xdgstate"},
               {"XDG_CACHE_HOME", root + "/cache"},
               {"XDG_RUNTIME_DIR", ""},
               {"NOTIFY_SOCKET", ""},
               {"RALPH_SOCKET", socket},
               {"RALPH_STATE_DIR", root + "/state"},
               {"RALPH_CONFIG", root + "/config/ralph/ralphd.conf"},
               {"RALPH_OPENCODE", opencode},
               {"RALPH_NO_AUTOSTART", "1"},
               {"OPENCODE_DISABLE_AUTOUPDATE", "1"},
               {"OPENCODE_DISABLE_MODELS_FETCH", "1"},
               {"OPENCODE_DISABLE_LSP_DOWNLOAD", "1"},
               {"npm_config_registry", "http://127.0.0.1:9/"}};
    fs::create_directories(root + "/home");
    std::vector<pid_t> children;
    auto cleanup = [&] {
        for (pid_t p : children) {
            kill(p, SIGTERM);
            if (Wait(p, std::chrono::seconds(30)) == -1) {
                kill(p, SIGKILL);
                Wait(p, std::chrono::seconds(5));
            }
        }
        children.clear();
        if (!opt.keep) fs::remove_all(root);
        else std::cerr << "ralph-load: kept " << root << "\n";
    };
    auto fail = [&](const std::string& why) {
        std::cerr << "ralph-load: " << why << "\n" << ReadFile(root + "/ralphd.err").substr(0, 4000);
        cleanup();
        return 1;
    };

    pid_t model = Spawn({RALPH_FAKE_MODEL_PATH, "--port", "0"}, {}, root + "/model.out", root + "/model.err");
    children.push_back(model);
    std::string url;
    for (int i = 0; i < 500 && url.empty(); ++i) {
        std::string out = ReadFile(root + "/model.out");
        if (auto at = out.find("listening on "); at != std::string::npos && out.find('\n', at) != std::string::npos)
            url = out.substr(at + 13, out.find('\n', at) - at - 13);
        else std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (url.empty()) return fail("the scripted model did not start");
    if (Run({"/bin/bash", std::string(RALPH_SOURCE_DIR) + "/scripts/fake-model-config", url, root + "/config"}, env,
            root) != 0)
        return fail("scripts/fake-model-config failed");
    int port = 30000 + static_cast<int>(getpid() % 500) * 40;
    WriteFile(root + "/config/ralph/ralphd.conf", "[server]\nport = " + std::to_string(port) + "\nport_range = " +
                                                       std::to_string(port) + "-" + std::to_string(port + 30) + "\n");
    pid_t daemon = Spawn({RALPHD_PATH}, env, root + "/ralphd.out", root + "/ralphd.err");
    children.push_back(daemon);
    for (int i = 0; i < 750 && !Pings(socket); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!Pings(socket)) return fail("ralphd did not start");

    // The loops: long enough to run throughout, each in a task of its own, in two projects.
    std::vector<int64_t> runs;
    for (int i = 0; i < opt.loops; ++i) {
        std::string project = root + (i % 2 ? "/beta" : "/alpha");
        if (!fs::exists(project + "/.git")) {
            fs::create_directories(project);
            WriteFile(project + "/README.md", "load\n");
            for (const std::vector<std::string>& git : {std::vector<std::string>{"init", "-q"},
                                                        std::vector<std::string>{"add", "-A"},
                                                        std::vector<std::string>{"commit", "-qm", "init"}}) {
                std::vector<std::string> cmd = {"/usr/bin/git", "-C", project, "-c", "user.name=l", "-c", "user.email=l@l"};
                cmd.insert(cmd.end(), git.begin(), git.end());
                if (Run(cmd, env, root) != 0) return fail("git failed in " + project);
            }
        }
        std::string task = "t" + std::to_string(i);
        WriteFile(project + "/tasks/" + task + "/prompt.md", "SLOW:200 WRITE:out/" + task + "-{ITERATION}.txt=x\n");
        RpcClient c(socket);
        auto reply = c.Call("run.start", json::object{{"task", task}, {"cwd", project}, {"max_iterations", 100000}});
        if (!reply.contains("result")) return fail("run.start: " + json::serialize(reply));
        runs.push_back(reply.at("result").at("id").as_int64());
    }
    auto iteration = [&](int64_t id) -> int64_t {
        try {
            RpcClient c(socket);
            auto r = c.Call("run.get", json::object{{"run", id}});
            return r.contains("result") ? r.at("result").at("iteration").as_int64() : -1;
        } catch (const std::exception&) {
            return -1;
        }
    };
    auto warm_deadline = SteadyClock::now() + std::chrono::seconds(120);
    for (int64_t id : runs)
        while (iteration(id) < 1 && SteadyClock::now() < warm_deadline) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (int64_t id : runs)
        if (iteration(id) < 1) return fail("run " + std::to_string(id) + " never started an iteration");

    // Followers: `ralph logs <run> -f`, as a person would watch.
    std::vector<pid_t> followers;
    for (int64_t id : runs) {
        std::string base = root + "/follow." + std::to_string(id);
        followers.push_back(Spawn({RALPH_PATH, "logs", std::to_string(id), "-f"}, env, base + ".out", base + ".err"));
    }

    // The clients.
    std::atomic<bool> stop{false};
    std::atomic<long> errors{0};
    std::mutex mu;
    std::map<std::string, Samples> samples;
    std::string first_error;
    std::vector<std::thread> clients;
    int64_t iterations_before = 0;
    for (int64_t id : runs) iterations_before += iteration(id);
    auto started = SteadyClock::now();
    for (int i = 0; i < opt.clients; ++i) {
        clients.emplace_back([&, i] {
            bool persistent = i % 2 == 0;
            std::map<std::string, Samples> mine;
            std::unique_ptr<RpcClient> conn;
            for (long n = 0; !stop; ++n) {
                const char* method = n % 2 ? "daemon.ping" : "run.list";
                auto t0 = SteadyClock::now();
                try {
                    if (!conn) conn = std::make_unique<RpcClient>(socket);
                    auto reply = conn->Call(method, json::object{});
                    mine[method].Add(SteadyClock::now() - t0);
                    if (!reply.contains("result")) throw std::runtime_error(json::serialize(reply));
                } catch (const std::exception& e) {
                    std::lock_guard lock(mu);
                    if (first_error.empty()) first_error = std::string(method) + ": " + e.what();
                    ++errors;
                    conn.reset();
                }
                if (!persistent) conn.reset();
                if (opt.think_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt.think_ms));
            }
            std::lock_guard lock(mu);
            for (auto& [m, s] : mine) samples[m].Merge(s);
        });
    }
    std::this_thread::sleep_for(std::chrono::seconds(opt.seconds));
    stop = true;
    for (auto& t : clients) t.join();
    double elapsed = std::chrono::duration<double>(SteadyClock::now() - started).count();
    int64_t iterations_during = -iterations_before;
    for (int64_t id : runs) iterations_during += iteration(id);

    // Stop the loops after their iteration; the followers end with them.
    for (int64_t id : runs) {
        RpcClient c(socket);
        auto r = c.Call("run.stop", json::object{{"run", id}});
        if (!r.contains("result")) return fail("run.stop: " + json::serialize(r));
    }
    long followed = 0, logged = 0, dropped = 0;
    for (std::size_t i = 0; i < runs.size(); ++i) {
        int code = Wait(followers[i], std::chrono::seconds(120));
        if (code == -1) {
            kill(followers[i], SIGKILL);
            Wait(followers[i], std::chrono::seconds(5));
        }
        std::string id = std::to_string(runs[i]);
        std::string live = ReadFile(root + "/follow." + id + ".out");
        std::string after;
        if (Run({RALPH_PATH, "logs", id}, env, root, &after) != 0) return fail("ralph logs " + id + " failed");
        auto lines = [](const std::string& text) {
            std::vector<std::string> out;
            std::istringstream in(text);
            for (std::string l; std::getline(in, l);) out.push_back(l);
            return out;
        };
        auto a = lines(live), b = lines(after);
        followed += static_cast<long>(a.size());
        logged += static_cast<long>(b.size());
        // The loops were stopped: `ralph logs -f` exits 4 (stopped) for them.
        if (code != 4 || a != b) {
            ++dropped;
            std::cerr << "ralph-load: run " << id << ": `ralph logs -f` exited " << code << " and showed " << a.size()
                      << " lines; the log afterwards has " << b.size() << "\n";
        }
    }
    long calls = 0;
    for (auto& [m, s] : samples) calls += static_cast<long>(s.us.size());

    std::printf("ralph-load: %d clients (half connecting per call), %d loops (%ld iterations meanwhile), %.1f s\n",
                opt.clients, opt.loops, static_cast<long>(iterations_during), elapsed);
    std::printf("  calls: %ld (%.0f/s), errors: %ld%s%s\n", calls, static_cast<double>(calls) / elapsed, errors.load(),
                first_error.empty() ? "" : ", the first: ", first_error.c_str());
    json::object summary{{"clients", opt.clients}, {"loops", opt.loops}, {"seconds", elapsed}, {"calls", calls},
                         {"errors", errors.load()}, {"iterations", iterations_during}};
    for (auto& [m, s] : samples) {
        double p50 = s.Quantile(0.5) / 1000, p99 = s.Quantile(0.99) / 1000, max = s.Quantile(1.0) / 1000;
        std::printf("  %-12s n=%-7zu p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n", m.c_str(), s.us.size(), p50, p99, max);
        summary[m] = json::object{{"n", s.us.size()}, {"p50_ms", p50}, {"p99_ms", p99}, {"max_ms", max}};
    }
    std::printf("  followed logs: %ld lines of %ld in %zu runs (%ld runs differ)\n", followed, logged, runs.size(), dropped);
    summary["followed_lines"] = followed;
    summary["logged_lines"] = logged;
    summary["runs_differing"] = dropped;
    std::printf("%s\n", json::serialize(summary).c_str());

    kill(daemon, SIGTERM);
    int code = Wait(daemon, std::chrono::seconds(60));
    std::erase(children, daemon);
    if (code != 0) std::cerr << "ralph-load: ralphd exited " << code << "\n" << ReadFile(root + "/ralphd.err").substr(0, 4000);
    cleanup();
    return errors == 0 && dropped == 0 && code == 0 ? 0 : 1;
}
