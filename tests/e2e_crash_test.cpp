// Crash consistency: a busy ralphd (loops in two projects through the real opencode, clients
// polling, runs started and stopped) is killed with SIGKILL at random moments, again and again,
// and restarted each time. Afterwards the database is intact and nothing it said was a lie: no
// terminal run changed, iterations are contiguous, never two running runs of one task, every run
// that was running finished, and no opencode process outlived the daemon that owned it.
//
// Runs only in the normal build (scripts/test sets RALPH_SKIP_CRASH_TEST in the sanitizer build):
// what it exercises is the daemon's state on disk, which the sanitizers do not watch, and the
// sanitizer build would double its few minutes. RALPH_CRASH_KILLS sets the number of kills (30).
#include "daemon/proc_scan.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <sqlite3.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace ralph::test {
namespace {

namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct TaskRef {
    std::string project;
    std::string name;
    std::string dir;
};

/// What the clients saw while the daemon was being killed, and every broken promise.
class Observations {
public:
    void RunList(const json::object& reply)
    {
        if (!reply.contains("result")) return;
        std::lock_guard lock(mu_);
        std::map<std::string, int> running_per_task;
        for (const auto& v : reply.at("result").at("runs").as_array()) {
            const json::object& run = v.as_object();
            int64_t id = run.at("id").as_int64();
            std::string status(run.at("status").as_string());
            std::string reason = run.at("reason").is_string() ? std::string(run.at("reason").as_string()) : "";
            if (run.at("iteration").as_int64() > run.at("max_iterations").as_int64())
                Violation("run " + std::to_string(id) + " is past its iteration limit");
            if (status == "running") {
                ++running_per_task[std::string(run.at("task_dir").as_string())];
                if (terminal_.count(id)) Violation("run " + std::to_string(id) + " went back to running");
                continue;
            }
            auto [it, first] = terminal_.emplace(id, std::pair{status, reason});
            if (!first && it->second != std::pair{status, reason})
                Violation("run " + std::to_string(id) + " changed from " + it->second.first + " (" + it->second.second +
                          ") to " + status + " (" + reason + ")");
        }
        for (const auto& [task, n] : running_per_task)
            if (n > 1) Violation(std::to_string(n) + " running runs of " + task);
        ++lists_;
    }
    void Violation(const std::string& what)
    {
        std::lock_guard lock(violations_mu_);
        if (violations_.size() < 50) violations_.push_back(what);
    }
    std::map<int64_t, std::pair<std::string, std::string>> terminal()
    {
        std::lock_guard lock(mu_);
        return terminal_;
    }
    std::vector<std::string> violations()
    {
        std::lock_guard lock(violations_mu_);
        return violations_;
    }
    int lists() const { return lists_; }

private:
    std::mutex mu_, violations_mu_;
    std::map<int64_t, std::pair<std::string, std::string>> terminal_;
    std::vector<std::string> violations_;
    std::atomic<int> lists_{0};
};

/// opencode processes of this test (by the HOME in their environment) that the daemon `owner`
/// does not own: neither its children nor their descendants. Zombies are dead and left out.
std::vector<std::string> StrayOpencode(const std::string& home, pid_t owner)
{
    ProcFs proc;
    std::vector<std::string> out;
    for (int pid : proc.Pids()) {
        auto cmd = proc.Cmdline(pid);
        if (cmd.empty() || std::filesystem::path(cmd[0]).filename().string().rfind("opencode", 0) != 0) continue;
        if (!proc.EnvironHas(pid, "HOME=" + home)) continue;
        auto st = proc.Stat(pid);
        if (!st || st->state == 'Z') continue;
        bool owned = false;
        for (int p = st->ppid, hops = 0; p > 1 && hops < 64; ++hops) {
            if (p == owner) {
                owned = true;
                break;
            }
            auto up = proc.Stat(p);
            if (!up) break;
            p = up->ppid;
        }
        if (!owned) out.push_back(std::to_string(pid) + " (parent " + std::to_string(st->ppid) + ")");
    }
    return out;
}

class Db {
public:
    explicit Db(const std::string& path)
    {
        if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
            ADD_FAILURE() << "cannot open " << path;
    }
    ~Db() { sqlite3_close(db_); }
    /// Every row of a query, each column as text.
    std::vector<std::vector<std::string>> Rows(const std::string& sql)
    {
        std::vector<std::vector<std::string>> rows;
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
            ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
            return rows;
        }
        while (sqlite3_step(s) == SQLITE_ROW) {
            std::vector<std::string> row;
            for (int c = 0; c < sqlite3_column_count(s); ++c) {
                auto* t = sqlite3_column_text(s, c);
                row.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
            }
            rows.push_back(std::move(row));
        }
        sqlite3_finalize(s);
        return rows;
    }

private:
    sqlite3* db_{nullptr};
};

/// The daemon answers and has reconciled what its predecessor left (no longer WARMING_UP).
bool Pings(const TestEnv& env)
{
    try {
        auto info = env.Call("daemon.info");
        const json::value* result = info.if_contains("result");
        return result && result->is_object() && result->as_object().if_contains("warming_up") &&
               result->as_object().at("warming_up") == json::value(false);
    } catch (const std::exception&) {
        return false;
    }
}

TEST(E2ECrash, RandomKillNineUnderLoadLosesNothingAndNeverLies)
{
    if (getenv("RALPH_SKIP_CRASH_TEST")) GTEST_SKIP() << "RALPH_SKIP_CRASH_TEST is set (sanitizer build)";
    int kills = 30;
    if (const char* k = getenv("RALPH_CRASH_KILLS"); k && std::atoi(k) > 0) kills = std::atoi(k);
    std::random_device rd;
    unsigned seed = rd();
    if (const char* s = getenv("RALPH_CRASH_SEED")) seed = static_cast<unsigned>(std::atoll(s));
    std::cout << "[ crash    ] seed " << seed << " (RALPH_CRASH_SEED), " << kills << " kills\n";
    std::mt19937 rng(seed);

    E2EEnv env;
    // Whatever happens, no process of this test outlives it (a failure may leave a daemon's server).
    struct KillLeftovers {
        const std::string& home;
        ~KillLeftovers()
        {
            ProcFs proc;
            for (int pid : proc.Pids())
                if (pid != getpid() && proc.EnvironHas(pid, "HOME=" + home)) kill(pid, SIGKILL);
        }
    } kill_leftovers{env.home};
    // Two projects, three tasks each: one completes by promise at its run's third iteration, one
    // only stops at its limit, one is slow and mostly stopped by the driver. KEY gives every run
    // its own counter in the scripted model.
    std::vector<TaskRef> tasks;
    for (std::string project_name : {"alpha", "beta"}) {
        std::string project = env.MakeProject(project_name);
        auto add = [&](const std::string& name, const std::string& prompt) {
            tasks.push_back({project, name, env.AddTask(project, name, prompt)});
        };
        add("promise", "SLOW:250 WRITE:out/{TASK_NAME}-{RUN_ID}-{ITERATION}.txt=x KEY:{PROJECT_ROOT}-{RUN_ID} "
                       "COMPLETE_AFTER:3\n");
        add("limit", "SLOW:200 TEXTONLY\n");
        add("slow", "SLOW:900 WRITE:out/slow-{RUN_ID}-{ITERATION}.txt=x\n");
    }

    Observations seen;
    std::atomic<bool> done{false};
    std::atomic<int> starts{0}, stops{0}, refused{0}, rpc_calls{0};
    std::mutex ids_mu;
    std::map<int64_t, std::string> started_ids;

    // The driver: starts runs of idle tasks, stops some after their iteration or at once.
    std::thread driver([&] {
        std::mt19937 r(seed + 1);
        while (!done) {
            std::this_thread::sleep_for(std::chrono::milliseconds(150 + r() % 250));
            const TaskRef& t = tasks[r() % tasks.size()];
            try {
                RpcClient c(env.socket);
                unsigned action = r() % 20;
                json::object reply;
                if (action < 16) {
                    reply = c.Call("run.start", json::object{{"task", t.name}, {"cwd", t.project},
                                                             {"max_iterations", 2 + static_cast<int>(r() % 3)}});
                    if (reply.contains("result")) {
                        ++starts;
                        int64_t id = reply.at("result").at("id").as_int64();
                        std::lock_guard lock(ids_mu);
                        if (!started_ids.emplace(id, t.dir).second)
                            seen.Violation("run id " + std::to_string(id) + " was handed out twice");
                    }
                } else {
                    reply = c.Call("run.stop", json::object{{"run", t.name}, {"cwd", t.project}, {"now", action == 19}});
                    if (reply.contains("result")) ++stops;
                }
                ++rpc_calls;
                if (auto* err = reply.if_contains("error")) {
                    int64_t code = err->at("code").as_int64();
                    // Refusals that are the truth: already running, shutting down, no run yet, still
                    // reconciling what the killed daemon left (WARMING_UP).
                    if (code == -32005 || code == -32006 || code == -32001 || code == -32011) ++refused;
                    else seen.Violation("unexpected error: " + json::serialize(*err));
                }
            } catch (const ConnectionError&) {
                // the daemon is dead or restarting
            } catch (const std::exception& e) {
                seen.Violation(std::string("driver: ") + e.what());
            }
        }
    });
    // Clients polling the status, as `ralph status` and scripts do.
    std::vector<std::thread> pollers;
    for (int i = 0; i < 2; ++i) {
        pollers.emplace_back([&, i] {
            std::mt19937 r(seed + 10 + i);
            while (!done) {
                try {
                    RpcClient c(env.socket);
                    seen.RunList(c.Call("run.list", json::object{{"all", true}}));
                    ++rpc_calls;
                    auto one = c.Call("run.get", json::object{{"run", 1 + static_cast<int>(r() % 40)}});
                    ++rpc_calls;
                    if (auto* err = one.if_contains("error");
                        err && err->at("code").as_int64() != -32001 && err->at("code").as_int64() != -32011)
                        seen.Violation("run.get: " + json::serialize(*err));
                } catch (const ConnectionError&) {
                } catch (const std::exception& e) {
                    seen.Violation(std::string("poller: ") + e.what());
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(30 + r() % 60));
            }
        });
    }

    int starts_of_daemon = 0;
    auto spawn_daemon = [&] {
        ++starts_of_daemon;
        return SpawnProgram({RALPHD_PATH, "--debug"}, env.env, "/dev/null",
                            env.dir + "/crash-ralphd." + std::to_string(starts_of_daemon) + ".stderr");
    };
    auto stderr_of = [&](int n) { return ReadFile(env.dir + "/crash-ralphd." + std::to_string(n) + ".stderr"); };
    auto wait_ready = [&](pid_t pid) {
        bool ok = WaitFor([&] { return !ProcessAlive(pid) || Pings(env); }, 30s) && ProcessAlive(pid);
        if (!ok) ADD_FAILURE() << "ralphd start " << starts_of_daemon << " did not come up:\n" << stderr_of(starts_of_daemon);
        return ok;
    };
    auto check_strays = [&](pid_t owner, const std::string& when) {
        auto strays = StrayOpencode(env.home, owner);
        if (!strays.empty()) {
            std::string list;
            for (const auto& s : strays) list += " " + s;
            seen.Violation("opencode not owned by the daemon " + when + ":" + list);
        }
    };

    // Git checkpoints (SPEC §9): whenever ralphd is killed, even in the middle of a snapshot, the
    // repository is sound and every run's ref names a complete snapshot.
    std::set<std::string> projects;
    for (const TaskRef& t : tasks) projects.insert(t.project);
    auto git = [&](const std::string& project, std::vector<std::string> args) {
        args.insert(args.begin(), {"/usr/bin/git", "-C", project});
        return RunProgram(args, env.env);
    };
    auto check_git = [&](const std::string& when) {
        for (const std::string& project : projects) {
            auto fsck = git(project, {"fsck", "--no-progress", "--no-dangling"});
            if (fsck.exit_code != 0) seen.Violation("git fsck in " + project + " " + when + ": " + fsck.out + fsck.err);
            auto refs = git(project, {"for-each-ref", "--format=%(refname)", "refs/ralph/runs/"});
            std::istringstream in(refs.out);
            for (std::string ref; std::getline(in, ref);)
                if (git(project, {"ls-tree", "-r", "--name-only", ref}).exit_code != 0)
                    seen.Violation(ref + " in " + project + " is no complete snapshot " + when);
        }
    };

    int early_kills = 0, kills_with_running_runs = 0;
    auto phase_start = SteadyClock::now();
    for (int k = 0; k < kills && !HasFatalFailure(); ++k) {
        pid_t pid = spawn_daemon();
        if (rng() % 5 == 0) {
            // Early: during start-up (database, reconciling the previous daemon's server, resuming).
            ++early_kills;
            std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 400));
        } else {
            if (!wait_ready(pid)) break;
            check_strays(pid, "after restart " + std::to_string(k));
            std::this_thread::sleep_for(std::chrono::milliseconds(500 + rng() % 6000));
            try {
                auto list = env.Call("run.list", json::object{{"all", true}});
                for (const auto& r : list.at("result").at("runs").as_array())
                    if (r.at("status") == "running") {
                        ++kills_with_running_runs;
                        break;
                    }
            } catch (const std::exception&) {
            }
        }
        kill(pid, SIGKILL);
        EXPECT_EQ(WaitExit(pid, 10s), 128 + SIGKILL);
        check_git("after kill " + std::to_string(k));
    }
    auto kill_phase = SteadyClock::now() - phase_start;
    done = true;
    driver.join();
    for (auto& t : pollers) t.join();

    // The last start: everything left running goes on and ends; nothing stays stuck.
    pid_t pid = spawn_daemon();
    ASSERT_TRUE(wait_ready(pid));
    check_strays(pid, "after the last restart");
    bool all_ended = WaitFor(
        [&] {
            try {
                auto list = env.Call("run.list", json::object{{"all", true}});
                seen.RunList(list);
                for (const auto& r : list.at("result").at("runs").as_array())
                    if (r.at("status") == "running") return false;
                return true;
            } catch (const std::exception&) {
                return false;
            }
        },
        240s);
    EXPECT_TRUE(all_ended) << "runs still running 240s after the last restart";
    check_strays(pid, "at the end");
    kill(pid, SIGTERM);
    EXPECT_EQ(WaitExit(pid, 60s), 0) << stderr_of(starts_of_daemon);
    EXPECT_TRUE(StrayOpencode(env.home, -1).empty()) << "opencode left after the daemon stopped";

    // The database: intact, and consistent with everything the clients were told.
    Db db(env.state_dir + "/ralph.db");
    auto integrity = db.Rows("PRAGMA integrity_check");
    ASSERT_EQ(integrity.size(), 1u);
    EXPECT_EQ(integrity[0][0], "ok");
    auto runs = db.Rows("SELECT id, status, reason, iteration, max_iterations, task_dir FROM runs ORDER BY id");
    std::map<int64_t, std::pair<std::string, std::string>> final_status;
    std::map<std::string, int> by_status;
    for (const auto& r : runs) {
        int64_t id = std::stoll(r[0]);
        final_status[id] = {r[1], r[2]};
        by_status[r[1] + "/" + r[2]]++;
        EXPECT_NE(r[1], "running") << "run " << id;
        // Kills never fail a run: it resumes, so a run ends only by its own rules.
        if (!(r[2] == "promise" || r[2] == "max_iterations" || r[2] == "user")) {
            auto why = db.Rows("SELECT data FROM run_events WHERE run_id = " + r[0] + " AND kind IN ('run.end', 'note')");
            std::string log;
            for (const auto& w : why) log += "\n  " + w[0];
            ADD_FAILURE() << "run " << id << ": " << r[2] << log;
        }
        auto its = db.Rows("SELECT n, outcome FROM iterations WHERE run_id = " + r[0] + " ORDER BY n");
        for (std::size_t i = 0; i < its.size(); ++i) {
            EXPECT_EQ(its[i][0], std::to_string(i + 1)) << "run " << id << ": iterations are not contiguous";
            EXPECT_NE(its[i][1], "") << "run " << id << " iteration " << its[i][0] << " never ended";
        }
        EXPECT_EQ(std::to_string(its.size()), r[3]) << "run " << id << ": iteration counter and iterations disagree";
        EXPECT_LE(std::stoi(r[3]), std::stoi(r[4])) << "run " << id;
    }
    // Every checkpoint recorded is on its run's ref (a snapshot made again after a kill may sit
    // between two recorded ones, never beside them).
    for (const auto& r : db.Rows("SELECT i.run_id, i.n, i.checkpoint, runs.project_root FROM iterations i JOIN runs "
                                 "ON runs.id = i.run_id WHERE i.checkpoint IS NOT NULL")) {
        auto on_ref = git(r[3], {"merge-base", "--is-ancestor", r[2], "refs/ralph/runs/" + r[0]});
        EXPECT_EQ(on_ref.exit_code, 0) << "run " << r[0] << " iteration " << r[1] << ": " << on_ref.err;
    }
    check_git("at the end");
    EXPECT_GT(std::stoi(db.Rows("SELECT COUNT(*) FROM iterations WHERE checkpoint IS NOT NULL")[0][0]), 0);
    for (const auto& [id, first] : seen.terminal()) {
        EXPECT_EQ(final_status[id], first) << "run " << id << " changed after it was seen " << first.first;
    }
    auto count = [&](const std::string& sql) { return db.Rows(sql)[0][0]; };
    for (const auto& v : seen.violations()) ADD_FAILURE() << v;

    std::cout << "[ crash    ] " << kills << " SIGKILLs (" << early_kills << " during start-up, "
              << kills_with_running_runs << " with runs in flight) in "
              << std::chrono::duration_cast<std::chrono::seconds>(kill_phase).count() << " s; " << starts_of_daemon
              << " daemon starts\n"
              << "[ crash    ] runs " << runs.size() << " (started by the driver " << starts << ", refused " << refused
              << ", stop requests " << stops << "); iterations " << count("SELECT COUNT(*) FROM iterations")
              << ", interrupted " << count("SELECT COUNT(*) FROM iterations WHERE outcome = 'interrupted'")
              << ", aborted " << count("SELECT COUNT(*) FROM iterations WHERE outcome = 'aborted'") << "\n"
              << "[ crash    ] outcomes:";
    for (const auto& [k, n] : by_status) std::cout << " " << k << "=" << n;
    std::cout << "; client calls " << rpc_calls << ", status lists checked " << seen.lists() << "\n";
    // What the daemons logged as errors, for whoever reads the output (not a failure by itself).
    std::map<std::string, int> errors;
    for (int i = 1; i <= starts_of_daemon; ++i) {
        std::istringstream in(stderr_of(i));
        for (std::string line; std::getline(in, line);)
            if (auto at = line.find(" error: "); at != std::string::npos) errors[line.substr(at + 8, 120)]++;
    }
    for (const auto& [line, n] : errors) std::cout << "[ crash    ] logged " << n << "x: " << line << "\n";
    EXPECT_GE(runs.size(), 10u) << "too little work happened to prove anything";
}

// A daemon killed between starting its server and recording it leaves a server no record names;
// a server that died leaves its tools. Both carry the daemon's state directory in RALPHD_OWNER, by
// which the next daemon finds and stops them before it serves; others are left alone.
TEST(FunctionalCrash, UnrecordedLeftoversOfAKilledDaemonAreStoppedBeforeServing)
{
    TestEnv env;
    std::filesystem::create_directories(env.state_dir);
    pid_t ours = SpawnProgram({"/bin/sleep", "120"}, {{"RALPHD_OWNER", env.state_dir}}, "/dev/null", "/dev/null");
    pid_t stubborn = SpawnProgram({"/bin/bash", "-c", "trap '' TERM; exec /bin/sleep 121"},
                                  {{"RALPHD_OWNER", env.state_dir}}, "/dev/null", "/dev/null");
    pid_t theirs = SpawnProgram({"/bin/sleep", "122"}, {{"RALPHD_OWNER", env.dir + "/elsewhere"}}, "/dev/null", "/dev/null");
    ASSERT_TRUE(WaitFor([&] { return ProcFs().Cmdline(stubborn) == std::vector<std::string>{"/bin/sleep", "121"}; }, 5s));
    env.WriteConfig("[server]\nstop_timeout = 1s\n");
    env.StartDaemon();
    // Stopped before the daemon answered (zombies of this test process until reaped).
    EXPECT_FALSE(ProcessAlive(ours));
    EXPECT_FALSE(ProcessAlive(stubborn));
    EXPECT_TRUE(ProcessAlive(theirs));
    EXPECT_NE(env.DaemonStderr().find("left without a record"), std::string::npos) << env.DaemonStderr();
    kill(theirs, SIGKILL);
    for (pid_t p : {ours, stubborn, theirs}) WaitExit(p, 5s);
    EXPECT_EQ(env.StopDaemon(), 0);
}

}  // namespace
}  // namespace ralph::test
