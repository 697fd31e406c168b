// Scenario 7 of docs/performance.md: git checkpoints. A snapshot of a generated repository of
// 10,000 files (100 MB) with 10 files changed per iteration, against `git status` on the same tree
// in the same run; both started the same way (through ralphd's own GitRunner and launcher).
#include "bench/scenario_util.h"
#include "bench/scenarios.h"

#include "bench/process.h"
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
    if (!Await(io, checkpoints.TakeBase(*cr, 1)).ok()) throw std::runtime_error("the base snapshot failed");

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
            Result<Checkpoint> cp = Await(io, checkpoints.Take(*cr, 1, round + 1, ""));
            if (!cp || cp->files_changed < 1) throw std::runtime_error("a snapshot failed or saw no change");
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
    report.Add({"checkpoint.snapshot_ms", S, "one iteration's snapshot (" + tree + ")", "ms", snap, true});
    report.Add({"checkpoint.git_status_ms", S, "`git status --porcelain` on the same tree, same run", "ms", st, true});
    report.Add({"checkpoint.snapshot_vs_status", S, "snapshot ÷ `git status` (medians)", "×",
                Single(st.median > 0 ? snap.median / st.median : 0), false, AtMost(2, "≤ 2")});
    fs::remove_all(repo);
}

}  // namespace ralph::bench
