// ralph-bench: runs the benchmark scenarios of docs/performance.md in a private directory and
// prints a markdown table; every figure also goes to a JSON file. bench/run is the one command
// that builds it and runs it; see `ralph-bench --help` for running parts of it.
#include "bench/floor_client.h"
#include "bench/process.h"
#include "bench/report.h"
#include "bench/scenarios.h"
#include "bench/world.h"

#include <boost/json.hpp>

#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <thread>
#include <unistd.h>

using namespace ralph::bench;
namespace json = boost::json;

namespace {

const char* kUsage =
    "Usage: ralph-bench [options]\n\n"
    "Runs ralph's benchmarks (docs/performance.md) in a private directory and prints a markdown table.\n\n"
    "  --dir DIR        the private directory, removed first (default /tmp/ralph-bench)\n"
    "  --out FILE       where the JSON of every figure goes (default ./ralph-bench.json);\n"
    "                   the table also goes to FILE with .md instead of .json\n"
    "  --only LIST      comma-separated scenarios: iteration,status,socket,loops,detection,checkpoint,memory,followed\n"
    "  --quick          fewer repetitions and a 10 s idle: for trying the benchmark, not for figures\n"
    "  --iterations N   scenario 1 iterations per way (30)      --rounds N   alternating ralph/floor rounds (3)\n"
    "  --idle-seconds N scenario 5 (60)                         --kills N    scenario 6 (5)\n"
    "  --baseline DIR   also measure scenario 2 with DIR/ralph and DIR/ralphd (another build), in turn\n"
    "                   with this build on a copy of the same history, and print the ratios\n"
    "  --nice N         run everything at this scheduling priority (e.g. -10 on a shared machine, as\n"
    "                   root: what else runs there then disturbs the figures less)\n"
    "  --keep           leave DIR in place afterwards\n"
    "  --floor PORT PASSWORD DIRECTORY N PROMPT\n"
    "                   only the floor client against a running server, printing each iteration\n";

std::string Trim(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

std::string FirstLineWith(const std::string& path, const std::string& key)
{
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key, 0) == 0) return Trim(line.substr(line.find(':') + 1));
    return "";
}

json::object MachineMeta(const Binaries& bin, const Env& env)
{
    json::object m;
    char stamp[64];
    time_t now = time(nullptr);
    tm utc{};
    gmtime_r(&now, &utc);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
    m["date"] = stamp;
    utsname u{};
    uname(&u);
    m["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
    std::string cpu = FirstLineWith("/proc/cpuinfo", "model name");
    m["cpu"] = cpu.substr(cpu.find_first_not_of(" \t"));
    m["cores"] = std::thread::hardware_concurrency();
    m["memory_gb"] = std::strtod(FirstLineWith("/proc/meminfo", "MemTotal").c_str(), nullptr) / 1024 / 1024;
    m["os"] = [] {
        std::ifstream in("/etc/os-release");
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("PRETTY_NAME=", 0) == 0) {
                std::string v = line.substr(12);
                if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
                return v;
            }
        return std::string();
    }();
    int code = 0;
    m["opencode"] = Trim(Capture({bin.opencode, "--version"}, env, "", &code));
    std::string commit = Trim(Capture({"git", "-C", bin.source_dir, "rev-parse", "--short", "HEAD"}, env, "", &code));
    std::string dirty = Trim(Capture({"git", "-C", bin.source_dir, "status", "--porcelain", "--untracked-files=no"}, env, "", &code));
    m["commit"] = commit + (dirty.empty() ? "" : " (with uncommitted changes)");
    return m;
}

std::string LoadAverage() { return Trim(ReadFile("/proc/loadavg")); }

}  // namespace

/// ralph-bench --floor PORT PASSWORD DIRECTORY N PROMPT: only the floor client, against a server
/// that runs already; prints each iteration's phases (for looking into scenario 1 by hand).
int FloorOnly(int argc, char** argv)
{
    if (argc != 7) {
        std::cerr << "usage: ralph-bench --floor PORT PASSWORD DIRECTORY ITERATIONS PROMPT\n";
        return 2;
    }
    FloorOptions o;
    o.server.port = std::stoi(argv[2]);
    o.server.password = argv[3];
    o.directory = argv[4];
    o.iterations = std::stoi(argv[5]);
    o.prompt = argv[6];
    o.title = "ralph: bench floor";
    FloorResult r = RunFloor(o);
    std::cout << "n start_unix_ms create_ms prompt_ms idle_ms messages_ms total_ms ok\n";
    int n = 0;
    for (const FloorIteration& it : r.iterations)
        std::cout << ++n << " " << it.started_unix_ms << " " << it.create_ms << " " << it.prompt_ms << " " << it.idle_ms
                  << " " << it.messages_ms << " " << it.total_ms << " " << it.ok << "\n";
    if (!r.error.empty()) std::cerr << "ralph-bench: " << r.error << "\n";
    return r.error.empty() ? 0 : 1;
}

int main(int argc, char** argv)
{
    if (argc > 1 && std::string(argv[1]) == "--floor") return FloorOnly(argc, argv);
    Options options;
    std::string dir = "/tmp/ralph-bench", out;
    std::set<std::string> only;
    bool keep = false;
    int nice_value = 0;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "ralph-bench: " << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::cout << kUsage;
            return 0;
        } else if (a == "--dir") dir = value();
        else if (a == "--out") out = value();
        else if (a == "--keep") keep = true;
        else if (a == "--only") {
            std::string list = value();
            for (std::size_t start = 0; start <= list.size();) {
                auto comma = list.find(',', start);
                if (comma == std::string::npos) comma = list.size();
                only.insert(list.substr(start, comma - start));
                start = comma + 1;
            }
        } else if (a == "--quick") {
            options.iterations = 10;
            options.rounds = 2;
            options.status_invocations = 50;
            options.pings = 5000;
            options.throughput_seconds = 1;
            options.idle_seconds = 10;
            options.kills = 2;
            options.checkpoint_rounds = 10;
            options.checkpoint_loop_iterations = 4;
            options.memory_iterations = 20;
            options.soak_iterations = 200;
            options.followed_iterations = 4;
        } else if (a == "--iterations") options.iterations = std::stoi(value());
        else if (a == "--rounds") options.rounds = std::stoi(value());
        else if (a == "--idle-seconds") options.idle_seconds = std::stoi(value());
        else if (a == "--kills") options.kills = std::stoi(value());
        else if (a == "--baseline") options.baseline = value();
        else if (a == "--nice") nice_value = std::stoi(value());
        else {
            std::cerr << "ralph-bench: unknown option " << a << "\n" << kUsage;
            return 2;
        }
    }
    for (const std::string& s : only) {
        if (!std::set<std::string>{"iteration", "status", "socket", "loops", "detection", "checkpoint", "memory", "followed"}.count(s)) {
            std::cerr << "ralph-bench: unknown scenario '" << s << "'\n";
            return 2;
        }
    }
    if (out.empty()) out = "ralph-bench.json";
    std::string md = out.size() > 5 && out.substr(out.size() - 5) == ".json" ? out.substr(0, out.size() - 5) + ".md"
                                                                           : out + ".md";

    Binaries bin{RALPH_PATH, RALPHD_PATH, RALPH_FAKE_MODEL_PATH, "", RALPH_SOURCE_DIR};
    const char* oc = std::getenv("RALPH_OPENCODE");
    bin.opencode = oc && *oc ? oc : std::string(RALPH_SOURCE_DIR) + "/.deps/opencode/node_modules/.bin/opencode";
    if (access(bin.opencode.c_str(), X_OK) != 0) {
        std::cerr << "ralph-bench: opencode is not installed at " << bin.opencode << ": run scripts/install-opencode\n";
        return 1;
    }

    if (nice_value != 0 && setpriority(PRIO_PROCESS, 0, nice_value) != 0) {
        std::cerr << "ralph-bench: cannot set priority " << nice_value << ": " << std::strerror(errno) << "\n";
        return 1;
    }
    InstallInterruptHandler();
    Report report;
    int failures = 0;
    {
        World world(dir, bin);
        json::object meta = MachineMeta(bin, world.env());
        meta["load_average_start"] = LoadAverage();
        auto run = [&](const char* name, void (*scenario)(World&, const Options&, Report&)) {
            if (Interrupted() || (!only.empty() && !only.count(name))) return;
            try {
                scenario(world, options, report);
            } catch (const std::exception& e) {
                ++failures;
                std::cerr << "[bench] scenario " << name << " failed: " << e.what() << "\n";
            }
        };
        auto started = std::chrono::steady_clock::now();
        run("iteration", ScenarioIteration);
        run("status", ScenarioStatus);
        run("socket", ScenarioSocket);
        run("loops", ScenarioLoopsAndIdle);
        run("detection", ScenarioDetection);
        run("checkpoint", ScenarioCheckpoint);
        run("memory", ScenarioMemory);
        run("followed", ScenarioFollowers);
        meta["load_average_end"] = LoadAverage();
        meta["duration_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        std::string cmd;
        for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(i ? argv[i] : "ralph-bench");
        meta["command"] = cmd;
        meta["build_type"] = RALPH_BUILD_TYPE;
        meta["nice"] = nice_value;
        for (auto& [k, v] : meta) report.SetMeta(k, v);
        std::string json_text = json::serialize(report.Json()) + "\n";
        if (auto parent = std::filesystem::path(out).parent_path(); !parent.empty()) std::filesystem::create_directories(parent);
        WriteFile(out, json_text);

        std::string title = "ralph benchmarks, " + std::string(meta["date"].as_string()) + ", " +
                            std::string(meta["cpu"].as_string()) + " (" + std::to_string(meta["cores"].as_uint64()) +
                            " cores, " + std::to_string(static_cast<int>(meta["memory_gb"].as_double() + 0.5)) +
                            " GB), " + std::string(meta["kernel"].as_string()) + ", opencode " +
                            std::string(meta["opencode"].as_string()) + ", commit " +
                            std::string(meta["commit"].as_string()) + "; load average " +
                            std::string(meta["load_average_start"].as_string()) + " at the start, " +
                            std::string(meta["load_average_end"].as_string()) + " at the end" +
                            (nice_value ? "; run at nice " + std::to_string(nice_value) : "");
        std::string table = title + "\n\n" + report.Markdown();
        WriteFile(md, table);
        std::cout << table << "\nEvery figure: " << out << "\nThis table: " << md << "\n";
        if (keep) std::cerr << "[bench] kept " << dir << "\n";
    }
    if (!keep) std::filesystem::remove_all(dir);
    return failures ? 1 : 0;
}
