// Scenario 2 of docs/performance.md: status at scale.
#include "bench/scenario_util.h"
#include "bench/scenarios.h"
#include "daemon/store.h"

#include <filesystem>
#include <iostream>

namespace ralph::bench {

namespace fs = std::filesystem;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ---------------------------------------------------------------------------------------------
// 2. Status at scale: whole `ralph status` processes with 10,000 runs and 100,000 iterations.

namespace {

/// Fills a fresh state database with terminal runs, their iterations and a few events each, as
/// months of use would leave it; written through RunStore itself, so that every column is the
/// schema's own.
void GenerateHistory(const std::string& db_path, const std::string& projects_root, int runs, int iterations_per_run)
{
    RunStore store(db_path);
    const int64_t now = UnixMillis();
    const std::pair<RunStatus, RunReason> statuses[] = {{RunStatus::kCompleted, RunReason::kPromise},
                                                        {RunStatus::kStopped, RunReason::kMaxIterations},
                                                        {RunStatus::kFailed, RunReason::kConsecutiveFailures},
                                                        {RunStatus::kCompleted, RunReason::kPrdComplete}};
    std::vector<ImportedRun> batch;
    for (int r = 1; r <= runs; ++r) {
        int project = r % 5, task = r % 50;
        std::string root = projects_root + "/project" + std::to_string(project);
        std::string name = "task" + std::to_string(task);
        const auto& [status, reason] = statuses[r % 4];
        int64_t started = now - static_cast<int64_t>(runs - r + 1) * 600000;  // one run every 10 minutes
        int64_t step_ms = 25000;
        ImportedRun in;
        RunRow& run = in.run;
        run.task_name = name;
        run.task_dir = root + "/tasks/" + name;
        run.project_root = root;
        run.status = status;
        run.reason = reason;
        run.iteration = run.max_iterations = iterations_per_run;
        run.promise = "COMPLETE";
        run.iteration_timeout_ms = 1800000;
        run.started_at = started;
        run.ended_at = started + step_ms * iterations_per_run;
        run.session_id = "ses_" + std::to_string(r) + "_" + std::to_string(iterations_per_run);
        run.last_port = 14096;
        run.tokens_in = 7683LL * iterations_per_run;
        run.tokens_out = 120LL * iterations_per_run;
        run.cost = 0.01 * iterations_per_run;
        auto event = [&](int n, const char* kind, const std::string& data, int64_t at) {
            in.events.push_back(RunEvent{0, 0, at, n, kind, data});
        };
        event(0, "run.start", "{\"task\":\"" + name + "\"}", started);
        for (int n = 1; n <= iterations_per_run; ++n) {
            bool last = n == iterations_per_run;
            OutcomeName outcome = last && status == RunStatus::kCompleted ? OutcomeName::kComplete
                                  : last && status == RunStatus::kFailed  ? OutcomeName::kError
                                                                          : OutcomeName::kContinue;
            int64_t t = started + step_ms * (n - 1);
            IterationRow it;
            it.n = n;
            it.session_id = "ses_" + std::to_string(r) + "_" + std::to_string(n);
            it.outcome = outcome;
            it.started_at = t;
            it.ended_at = t + step_ms - 500;
            it.promise_seen = outcome == OutcomeName::kComplete;
            it.tokens_in = 7683;
            it.tokens_out = 120;
            it.cost = 0.01;
            it.port = 14096;
            in.iterations.push_back(it);
            event(n, "iteration.start", "{\"session\":\"" + it.session_id + "\"}", t);
            event(n, "text", "{\"text\":\"Working on it.\"}", t + step_ms / 2);
            event(n, "iteration.end", "{\"outcome\":\"" + std::string(Name(outcome)) + "\"}", t + step_ms - 500);
        }
        event(iterations_per_run, "run.end", "{\"status\":\"" + std::string(Name(status)) + "\"}", run.ended_at);
        batch.push_back(std::move(in));
        if (batch.size() == 1000 || r == runs) {
            store.ImportFinishedRuns(batch);
            batch.clear();
        }
    }
    store.ExecForTest("PRAGMA wal_checkpoint(TRUNCATE)");
}

}  // namespace

void ScenarioStatus(World& world, const Options& o, Report& report)
{
    const std::string S = "2. Status at scale (" + std::to_string(o.status_runs) + " runs, " +
                          std::to_string(o.status_runs * o.status_iterations) + " iterations)";
    Progress(S);
    std::string project = world.MakeProject("p2");
    std::string state = world.root() + "/s2-ralphd/state";
    fs::create_directories(state);
    auto t0 = SteadyClock::now();
    GenerateHistory(state + "/ralph.db", world.root() + "/history", o.status_runs, o.status_iterations);
    Progress("generated the history in " + std::to_string(static_cast<int>(MsSince(t0))) + " ms");

    // This build, and with --baseline another build on a copy of the same history, measured
    // turn about so that both see the same machine.
    struct Subject {
        std::unique_ptr<Ralphd> ralphd;
        std::vector<double> status, all_json, version, rpc_list, rpc_list_all, rpc_server_status, all_json_kb;
    };
    std::vector<Subject> subjects(o.baseline.empty() ? 1 : 2);
    if (!o.baseline.empty()) {
        fs::create_directories(world.root() + "/s2-baseline/state");
        fs::copy_file(state + "/ralph.db", world.root() + "/s2-baseline/state/ralph.db");
        subjects[1].ralphd = std::make_unique<Ralphd>(world, "s2-baseline", ManagedConfig(world), o.baseline);
    }
    subjects[0].ralphd = std::make_unique<Ralphd>(world, "s2-ralphd", ManagedConfig(world));
    for (Subject& subject : subjects) subject.ralphd->StartServer();  // as users have it: a running server
    // and an opencode server ralph does not manage, which run.list lists as untracked.
    OpencodeServer untracked(world, "s2-untracked-opencode", RandomWord());

    const std::string all_out = world.root() + "/s2-status-all.json";
    auto one_round = [&](Subject& x, bool record) {
        Finished st = x.ralphd->Ralph({"status"}, project);
        fs::remove(all_out);
        Finished all = x.ralphd->Ralph({"status", "--all", "--json"}, project, all_out);
        Finished v = x.ralphd->Ralph({"--version"}, project);
        if (st.code != 0 || all.code != 0 || v.code != 0) throw std::runtime_error("ralph status failed");
        if (!record) return;
        x.status.push_back(st.wall_ms);
        x.all_json.push_back(all.wall_ms);
        x.version.push_back(v.wall_ms);
        x.all_json_kb.push_back(static_cast<double>(fs::file_size(all_out)) / 1024);
    };
    for (int i = 0; i < 5; ++i)
        for (Subject& x : subjects) one_round(x, false);
    Progress(std::to_string(o.status_invocations) + " x ralph status, ralph status --all --json, ralph --version" +
             (o.baseline.empty() ? "" : ", for this build and the baseline in turn"));
    for (int i = 0; i < o.status_invocations; ++i) {
        CheckInterrupted();
        for (Subject& x : subjects) one_round(x, true);
    }
    // Where the time goes inside ralphd: the same methods on one open connection.
    std::vector<std::unique_ptr<RpcClient>> rpcs;
    for (Subject& x : subjects) rpcs.push_back(std::make_unique<RpcClient>(x.ralphd->socket()));
    auto timed = [&](RpcClient& rpc, const char* method, json::value params, std::vector<double>& out) {
        auto t = SteadyClock::now();
        json::object reply = rpc.Call(method, std::move(params));
        if (!reply.contains("result")) throw std::runtime_error(std::string(method) + " failed");
        out.push_back(MsSince(t));
    };
    json::object first = rpcs[0]->Call("run.list", json::object{{"cwd", project}});
    bool listed = false;
    if (const json::value* result = first.if_contains("result"))
        for (const json::value& u : result->at("untracked_servers").as_array()) listed |= u.at("pid") == untracked.pid();
    if (!listed) throw std::runtime_error("run.list does not list the untracked opencode server");
    for (int i = 0; i < o.status_invocations; ++i) {
        for (std::size_t k = 0; k < subjects.size(); ++k) {
            timed(*rpcs[k], "run.list", json::object{{"cwd", project}}, subjects[k].rpc_list);
            timed(*rpcs[k], "run.list", json::object{{"cwd", project}, {"all", true}}, subjects[k].rpc_list_all);
            timed(*rpcs[k], "server.status", json::object{}, subjects[k].rpc_server_status);
        }
    }
    // The same run.list again and again, nothing between: what one call costs when the one before
    // was no `{all}` of megabytes (above, each run.list follows one), and ralphd's own CPU per call.
    std::vector<double> list_back_to_back;
    const int back_to_back_calls = 5 * o.status_invocations;
    const double list_cpu0 = ExactCpuSeconds(subjects[0].ralphd->pid());
    for (int i = 0; i < back_to_back_calls; ++i)
        timed(*rpcs[0], "run.list", json::object{{"cwd", project}}, list_back_to_back);
    const double list_cpu_ms = (ExactCpuSeconds(subjects[0].ralphd->pid()) - list_cpu0) * 1000 / back_to_back_calls;
    const Subject& x = subjects[0];
    report.Add({"status.ralph_status_ms", S, "`ralph status` (whole process)", "ms", Summarize(x.status), true,
                AtMost(10, "≤ 10 ms"), ""});
    report.Add({"status.ralph_status_all_json_ms", S, "`ralph status --all --json` (whole process)", "ms",
                Summarize(x.all_json), true, {}, ""});
    report.Add({"status.ralph_version_ms", S, "`ralph --version`: process start, no daemon call", "ms",
                Summarize(x.version), true, {}, ""});
    report.Add({"status.rpc_run_list_ms", S, "inside: `run.list` (latest 20) each right after a `server.status` that follows a `run.list {all}`",
                "ms", Summarize(x.rpc_list), true, {}, ""});
    report.Add({"status.rpc_run_list_back_to_back_ms", S, "inside: `run.list` (latest 20), calls back to back", "ms",
                Summarize(list_back_to_back), true, AtMost(0.5, "≤ 0.5 ms"), ""});
    report.Add({"status.rpc_run_list_ralphd_cpu_ms", S, "`ralphd` CPU per `run.list` (latest 20), calls back to back", "ms",
                Single(list_cpu_ms), false, {}, ""});
    report.Add({"status.rpc_run_list_all_ms", S, "inside: `run.list {all}` on an open connection", "ms",
                Summarize(x.rpc_list_all), true, {}, ""});
    report.Add({"status.rpc_server_status_ms", S, "inside: `server.status` on an open connection", "ms",
                Summarize(x.rpc_server_status), true, {}, ""});
    report.Add({"status.all_json_kb", S, "size of `ralph status --all --json`", "kB", Summarize(x.all_json_kb), false,
                {}, ""});
    if (subjects.size() < 2) return;
    const Subject& b = subjects[1];
    auto compare = [&](const std::string& id, const std::string& what, const std::vector<double>& mine,
                       const std::vector<double>& base) {
        Summary sb = Summarize(base);
        report.Add({"status.baseline." + id + "_ms", S, "baseline build: " + what, "ms", sb, true, {}, ""});
        report.Add({"status.ratio." + id, S, "this build ÷ baseline: " + what + ", medians", "×",
                    Single(Summarize(mine).median / sb.median), false, {}, ""});
    };
    compare("ralph_status", "`ralph status`", x.status, b.status);
    compare("ralph_status_all_json", "`ralph status --all --json`", x.all_json, b.all_json);
    compare("rpc_run_list", "`run.list` inside", x.rpc_list, b.rpc_list);
    compare("rpc_server_status", "`server.status` inside", x.rpc_server_status, b.rpc_server_status);
}

}  // namespace ralph::bench
