// Scenario 7 of docs/performance.md: git checkpoints. A snapshot of a generated repository of
// 10,000 files (100 MB) with 10 files changed per iteration, against `git status` on the same tree
// in the same run; both started the same way (through ralphd's own GitRunner and launcher).
#include "bench/scenario_util.h"
#include "bench/scenarios.h"

#include "bench/process.h"
#include "common/rpc_client.h"
#include "daemon/checkpoint.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>

namespace ralph::bench {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

/// Runs one awaitable on an io_context of its own (the launcher's SIGCHLD wait never ends, so
/// not io.run()).
template <typename T>
T Await(asio::io_context& io, asio::awaitable<T> op)
{
    std::optional<T> out;
    auto into = [](asio::awaitable<T> a, std::optional<T>* o) -> asio::awaitable<void> { o->emplace(co_await std::move(a)); };
    asio::co_spawn(io, into(std::move(op), &out), asio::detached);
    io.restart();
    while (!out && io.run_one()) {
    }
    if (!out) throw std::runtime_error("the io_context stopped");
    return std::move(*out);
}

void Git(const World& world, const std::string& repo, std::vector<std::string> args)
{
    args.insert(args.begin(), {"/usr/bin/git", "-C", repo, "-c", "user.name=b", "-c", "user.email=b@b"});
    if (RunTimed(args, world.env()).code != 0) throw std::runtime_error("git " + args[7] + " failed in " + repo);
}

/// The durations (ms) of the iterations of a run of task `w` in `project`, started and waited
/// for; `snapshots` gets how long each iteration's checkpoint took (its iteration.end event).
std::vector<double> IterationTimes(Ralphd& ralphd, const std::string& project, int iterations,
                                   std::vector<double>* snapshots)
{
    json::value run = ralphd.Call("run.start", json::object{{"task", "w"}, {"cwd", project}, {"max_iterations", iterations}});
    const int64_t id = Int(run.at("id"));
    auto deadline = SteadyClock::now() + std::chrono::minutes(10);
    for (;;) {
        CheckInterrupted();
        if (SteadyClock::now() > deadline) throw std::runtime_error("run " + std::to_string(id) + " did not end in time");
        run = ralphd.Call("run.get", json::object{{"run", id}});
        if (std::string(run.at("status").as_string()) != "running") break;
        Sleep(std::chrono::milliseconds(200));
    }
    json::value events = ralphd.Call("run.events", json::object{{"run", id}});
    for (const json::value& e : events.at("events").as_array())
        if (e.at("kind") == "iteration.end" && e.at("data").as_object().contains("checkpoint_ms"))
            snapshots->push_back(static_cast<double>(Int(e.at("data").at("checkpoint_ms"))));
    std::vector<double> ms;
    for (const json::value& it : run.at("iterations").as_array())
        if (Int(it.at("ended_at")) > 0) ms.push_back(static_cast<double>(Int(it.at("ended_at")) - Int(it.at("started_at"))));
    return ms;
}

/// The same loop, each iteration writing a file, in a git project (checkpoints on) and in a plain
/// directory (off), in turns.
void IterationOverhead(World& world, const Options& o, Report& report, const std::string& S)
{
    Progress(S + ": iterations with checkpoints on and off");
    Ralphd ralphd(world, "s7-ralphd", ManagedConfig(world));
    ralphd.StartServer();
    const std::string on = world.MakeProject("s7-git"), off = world.root() + "/s7-plain";
    fs::create_directories(off);
    const std::string prompt = "WRITE:out-{ITERATION}.txt=x Benchmark iteration: one file written, never the promise.\n";
    world.AddTask(on, "w", prompt);
    world.AddTask(off, "w", prompt);
    std::vector<double> with, without, snapshots;
    for (int round = 0; round < 3; ++round) {
        for (bool git : {round % 2 == 0, round % 2 != 0}) {
            std::vector<double> ms = IterationTimes(ralphd, git ? on : off, o.checkpoint_loop_iterations, &snapshots);
            (git ? with : without).insert((git ? with : without).end(), ms.begin(), ms.end());
        }
    }
    Summary a = Summarize(with), b = Summarize(without);
    Summary c = Summarize(snapshots);
    report.Add({"checkpoint.loop_snapshot_ms", S, "in the loop: an iteration's snapshot (small project, ralphd's own timing)",
                "ms", c, true, {}, ""});
    report.Add({"checkpoint.iteration_on_ms", S, "an iteration writing one file, in a git project", "ms", a, true, {}, ""});
    report.Add({"checkpoint.iteration_off_ms", S, "the same outside git, same run (no checkpoints; opencode's own "
                                                  "per-step git snapshots differ too)", "ms", b, true, {}, ""});
    report.Add({"checkpoint.snapshot_share", S, "the snapshot's share of an iteration in git (medians)", "%",
                Single(a.median > 0 ? 100 * c.median / a.median : 0), false, {}, ""});
    ralphd.Stop();
}

}  // namespace

void ScenarioCheckpoint(World& world, const Options& o, Report& report)
{
    const std::string S = "7. Git checkpoints";
    Progress(S + ": generating " + std::to_string(o.checkpoint_files) + " files");
    const std::string repo = world.root() + "/s7-repo";
    fs::remove_all(repo);
    std::mt19937 rng(7);
    const std::size_t file_size = static_cast<std::size_t>(o.checkpoint_mb) * 1024 * 1024 / o.checkpoint_files;
    std::string text(file_size, 'x');
    auto fill = [&] {
        for (char& c : text) c = static_cast<char>('a' + rng() % 26);
        for (std::size_t i = 63; i < text.size(); i += 64) text[i] = '\n';
    };
    for (int i = 0; i < o.checkpoint_files; ++i) {
        fs::path p = fs::path(repo) / ("d" + std::to_string(i % 100)) / ("f" + std::to_string(i) + ".txt");
        fs::create_directories(p.parent_path());
        fill();
        std::ofstream(p) << text;
    }
    Git(world, repo, {"init", "-q"});
    Git(world, repo, {"add", "-A"});
    Git(world, repo, {"commit", "-qm", "generated"});

    asio::io_context io;
    PosixLauncher launcher(io);
    GitRunner git(launcher, "/usr/bin/git");
    Checkpoints checkpoints(git, int64_t(10) << 20);
    std::optional<CheckpointRepo> cr = Await(io, checkpoints.Open(repo, 1));
    if (!cr) throw std::runtime_error(repo + " is not a git work tree");
    Result<Checkpoint> base = Await(io, checkpoints.TakeBase(*cr, 1));
    if (!base) throw std::runtime_error("the base snapshot failed");
    // As the loop calls it: HEAD at the iteration's start and the last snapshot, which it keeps.
    Result<std::string> head = Await(io, checkpoints.Head(*cr));
    if (!head) throw std::runtime_error("git rev-parse HEAD failed");
    std::string last = base->commit;

    std::vector<double> snapshot_ms, status_ms;
    for (int round = 0; round < o.checkpoint_rounds; ++round) {
        CheckInterrupted();
        for (int k = 0; k < 10; ++k) {  // 10 files changed per iteration
            int i = static_cast<int>(rng() % static_cast<unsigned>(o.checkpoint_files));
            fill();
            std::ofstream(fs::path(repo) / ("d" + std::to_string(i % 100)) / ("f" + std::to_string(i) + ".txt")) << text;
        }
        // Alternating which goes first, so that neither always gets the warmer cache.
        auto snapshot = [&] {
            auto t0 = SteadyClock::now();
            Result<Checkpoint> cp = Await(io, checkpoints.Take(*cr, 1, round + 1, *head, last));
            if (!cp || cp->files_changed < 1) throw std::runtime_error("a snapshot failed or saw no change");
            last = cp->commit;
            snapshot_ms.push_back(MsSince(t0));
        };
        auto status = [&] {
            auto t0 = SteadyClock::now();
            Result<CommandOutput> st = Await(io, git.RunChecked(repo, GitArgs("status", "--porcelain")));
            if (!st || !st->ok()) throw std::runtime_error("git status failed");
            status_ms.push_back(MsSince(t0));
        };
        if (round % 2) {
            snapshot();
            status();
        } else {
            status();
            snapshot();
        }
    }
    Checkpoints::Forget(*cr);
    Summary snap = Summarize(snapshot_ms), st = Summarize(status_ms);
    const std::string tree = std::to_string(o.checkpoint_files) + " files, " + std::to_string(o.checkpoint_mb) +
                             " MB, 10 changed per snapshot";
    report.Add({"checkpoint.snapshot_ms", S, "one iteration's snapshot (" + tree + ")", "ms", snap, true, {}, ""});
    report.Add({"checkpoint.git_status_ms", S, "`git status --porcelain` on the same tree, same run", "ms", st, true, {}, ""});
    report.Add({"checkpoint.snapshot_vs_status", S, "snapshot ÷ `git status` (medians)", "×",
                Single(st.median > 0 ? snap.median / st.median : 0), false, AtMost(2, "≤ 2"), ""});
    fs::remove_all(repo);
    IterationOverhead(world, o, report, S);
}

}  // namespace ralph::bench
