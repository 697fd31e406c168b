// 9. Many loops with many watchers: 40 runs on one ralphd at once, each followed by a `ralph logs
// -f` of its own, against one run followed the same way on the same ralphd. What ralphd spends per
// iteration must not grow with the runs and their followers (each follower wakes for its own run
// only), and its memory stays small.
#include "bench/scenario_util.h"
#include "bench/scenarios.h"

#include <cstdio>

namespace ralph::bench {

namespace json = boost::json;

void ScenarioFollowers(World& world, const Options& o, Report& report)
{
    const std::string S = "9. Followed loops (" + std::to_string(o.followed_loops) + " runs × " +
                          std::to_string(o.followed_iterations) + " iterations, each followed by `ralph logs -f`)";
    Progress(S);
    std::string pa = world.MakeProject("p9A"), pb = world.MakeProject("p9B");
    std::vector<std::pair<std::string, std::string>> tasks;  // project, task
    for (int i = 1; i <= o.followed_loops; ++i) {
        char name[16];
        std::snprintf(name, sizeof name, "f%02d", (i + 1) / 2);
        const std::string& project = i % 2 ? pa : pb;
        world.AddTask(project, name, kTextOnlyPrompt);
        tasks.emplace_back(project, name);
    }
    Ralphd ralphd(world, "s9-ralphd", ManagedConfig(world));
    ralphd.StartServer();
    // Warm-up, not counted: opencode's instance of each project.
    for (const std::string& p : {pa, pb}) ralphd.Ralph({"run", tasks[0].second, "-n", "1", "-f"}, p);

    struct Measured {
        double cpu_per_iteration_ms, peak_mb, wall_s;
    };
    auto measure = [&](std::size_t count) {
        ResetPeakRss(ralphd.pid());
        const double cpu0 = ExactCpuSeconds(ralphd.pid()), t0 = NowSeconds();
        std::vector<int64_t> ids;
        std::vector<pid_t> followers;
        for (std::size_t i = 0; i < count; ++i) {
            const auto& [project, task] = tasks[i];
            json::value run = ralphd.RalphJson({"run", task, "-n", std::to_string(o.followed_iterations)}, project);
            ids.push_back(Int(run.at("id")));
            followers.push_back(Spawn({world.bin().ralph, "logs", "-f", std::to_string(ids.back())}, ralphd.env(), project));
        }
        WaitRunsEnd(ralphd, ids, std::chrono::seconds(900));
        // Each follower ends by itself once its run has ended: exit 4, the run stopped (at
        // max_iterations). Two minutes for that, from the moment the last run ended.
        const auto runs_ended = std::chrono::steady_clock::now();
        for (pid_t f : followers)
            if (int code = Wait(f, runs_ended, std::chrono::minutes(2)).code; code != 4)
                throw std::runtime_error("a `ralph logs -f` ended with exit code " + std::to_string(code) +
                                         ", not 4 with its run");
        const double cpu = ExactCpuSeconds(ralphd.pid()) - cpu0;
        for (int64_t id : ids) {
            json::value run = ralphd.Call("run.get", json::object{{"run", id}});
            if (std::string(run.at("reason").as_string()) != "max_iterations")
                throw std::runtime_error("run " + std::to_string(id) + " ended " + json::serialize(run.at("reason")));
        }
        const double iterations = static_cast<double>(count) * o.followed_iterations;
        return Measured{cpu * 1000 / iterations, Mb(StatusKb(ralphd.pid(), "VmHWM")), NowSeconds() - t0};
    };
    Progress("1 run, followed");
    Measured one = measure(1);
    Progress(std::to_string(o.followed_loops) + " runs at once, each followed");
    Measured many = measure(tasks.size());

    const std::string n = std::to_string(o.followed_loops);
    report.Add({"followed.ralphd_cpu_one_ms", S, "`ralphd` CPU per iteration, 1 run followed", "ms",
                Single(one.cpu_per_iteration_ms), false, {}, ""});
    report.Add({"followed.ralphd_cpu_many_ms", S, "`ralphd` CPU per iteration, " + n + " runs each followed", "ms",
                Single(many.cpu_per_iteration_ms), false, {}, ""});
    report.Add({"followed.ralphd_cpu_ratio", S, n + " followed runs ÷ 1 followed run: `ralphd` CPU per iteration", "×",
                Single(one.cpu_per_iteration_ms > 0 ? many.cpu_per_iteration_ms / one.cpu_per_iteration_ms : 0), false,
                AtMost(1.3, "≤ 1.3"), ""});
    report.Add({"followed.ralphd_peak_rss_mb", S, "`ralphd` peak RSS (VmHWM), " + n + " runs each followed", "MB",
                Single(many.peak_mb), false, AtMost(15, "≤ 15 MB"), ""});
    report.Add({"followed.wall_many_s", S, n + " runs at once: wall time until the last follower ended", "s",
                Single(many.wall_s), false, {}, ""});
}

}  // namespace ralph::bench
