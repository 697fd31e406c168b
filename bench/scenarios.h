// The benchmark scenarios of docs/performance.md. Each one sets up what it needs in the world
// (its own ralphd, projects, opencode server), measures, adds its figures to the report, and
// stops everything it started before returning.
#pragma once

#include "bench/report.h"
#include "bench/world.h"

namespace ralph::bench {

struct Options {
    int iterations{30};           ///< 1: iterations per way (ralph, floor, opencode run)
    int rounds{5};                ///< 1: ralph and floor alternate this many times
    int status_runs{10000};       ///< 2: runs in the generated database
    int status_iterations{10};    ///< 2: iterations per generated run
    int status_invocations{200};  ///< 2: invocations of each command
    int pings{20000};             ///< 3: sequential pings
    double throughput_seconds{2}; ///< 3: each throughput measurement
    int loops{20};                ///< 4: concurrent runs
    int loop_iterations{10};      ///< 4: iterations per run
    int idle_seconds{60};         ///< 5
    int kills{5};                 ///< 6
    int checkpoint_files{10000};  ///< 7: files in the generated repository
    int checkpoint_mb{100};       ///< 7: their total size
    int checkpoint_rounds{30};    ///< 7: snapshots (and `git status` runs) measured
    int checkpoint_loop_iterations{10};  ///< 7: iterations per run, with checkpoints on and off (3 runs each)
    int memory_iterations{100};   ///< 8: iterations of the one loop at each server.max_memory
    int soak_loops{10};           ///< 8: loops of the soak
    int soak_iterations{2000};    ///< 8: iterations of the soak in all
    int followed_loops{40};       ///< 9: concurrent runs, each followed by `ralph logs -f`
    int followed_iterations{10};  ///< 9: iterations per run
    std::string baseline;         ///< 2: a directory with another build's ralph and ralphd to compare with
};

void ScenarioIteration(World& world, const Options& options, Report& report);
void ScenarioStatus(World& world, const Options& options, Report& report);
void ScenarioSocket(World& world, const Options& options, Report& report);
/// Scenarios 4 and 5 share one ralphd: many loops, then the same daemon idle.
void ScenarioLoopsAndIdle(World& world, const Options& options, Report& report);
void ScenarioDetection(World& world, const Options& options, Report& report);
void ScenarioCheckpoint(World& world, const Options& options, Report& report);
void ScenarioMemory(World& world, const Options& options, Report& report);
void ScenarioFollowers(World& world, const Options& options, Report& report);

/// Set by SIGINT/SIGTERM; long waits give up when it is set.
bool Interrupted();
void InstallInterruptHandler();

}  // namespace ralph::bench
