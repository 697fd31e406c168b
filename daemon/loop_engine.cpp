#include "daemon/loop_engine.h"

#include "common/errors.h"
#include "common/json_util.h"
#include "common/log.h"
#include "daemon/iteration.h"
#include "daemon/loop_active_run.h"
#include "daemon/run_checks.h"
#include "daemon/run_view.h"
#include "daemon/tool_result.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

namespace ralph {

namespace json = boost::json;
namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

void LoopEngine::Wake(ActiveRun& active)
{
    active.wake.Notify();
    if (active.watch) active.watch->notifier.Notify();
}

struct LoopEngine::IterationResult {
    OutcomeName outcome{OutcomeName::kContinue};
    std::string error;
    bool promise{false};
    int64_t tokens_in{0}, tokens_out{0}, tokens_reasoning{0};
    double cost{0};
    std::string budget;   ///< the budget that ended it, in words
    bool recorded{true};  ///< false when no iteration row was written (no session could be made)
};

LoopEngine::LoopEngine(asio::io_context& io, RunStore& store, ServerAccess& server, const RunSettings& run_defaults,
                       Clock& clock, OpencodeClientFactory clients, Millis idle_stop, GitRunner& git)
    : io_(io), store_(store), server_(server), run_defaults_(run_defaults), clock_(clock), idle_stop_(idle_stop),
      clients_(std::move(clients)), git_(git), hub_(io, server, clients_), activity_(io.get_executor(), clock),
      last_busy_(clock.Now()), watch_wake_(io.get_executor(), clock), worktree_made_(io.get_executor(), clock)
{
    server_.Subscribe([this](ServerState s) { OnServerState(s); });
    if (idle_stop_.count() > 0) asio::co_spawn(io_, StopIdleServer(), asio::detached);
    asio::co_spawn(io_, WatchServer(), asio::detached);
}

asio::awaitable<void> LoopEngine::StopIdleServer()
{
    // server.idle_stop: the server is stopped once no run has been active for that long. Attach
    // and the next run start it again on demand.
    const Millis idle_stop = idle_stop_;
    while (!shutting_down_) {
        if (!active_.empty()) last_busy_ = clock_.Now();
        auto idle_for = clock_.Now() - last_busy_;
        if (active_.empty() && idle_for >= idle_stop && server_.state() == ServerState::Running) {
            Log(LogLevel::Info) << "stopping the opencode server: no run for " << FormatDuration(idle_stop)
                                << " (server.idle_stop)";
            if (Status stopped = co_await server_.Stop(); !stopped.ok())
                Log(LogLevel::Warning) << "idle stop: " << stopped.message();
            last_busy_ = clock_.Now();
        }
        auto next = std::min<SteadyClock::duration>(std::max<SteadyClock::duration>(idle_stop - idle_for, std::chrono::milliseconds(100)),
                                              std::chrono::seconds(30));
        co_await activity_.WaitFor(next);
    }
}

LoopEngine::~LoopEngine() = default;

void LoopEngine::BeginIteration(int64_t run_id, int n, const std::string& session_id, int port)
{
    const int64_t now = NowMillis();
    const RunStore::BoundaryEvent start{"iteration.start", json::serialize(Obj("session", session_id, "port", port)), now};
    store_.BeginIteration(run_id, n, session_id, port, now, &start);  // the row and its event: one commit
    activity_.Notify(run_id);
}

void LoopEngine::Event(int64_t run_id, int iteration, const std::string& kind, json::object data)
{
    try {
        store_.AppendEvent(run_id, iteration, kind, json::serialize(data), NowMillis());
    } catch (const StoreError& e) {
        Log(LogLevel::Error) << "run " << run_id << ": cannot record event " << kind << ": " << e.what();
    }
    activity_.Notify(run_id);
}

Result<RunRow> LoopEngine::Start(const Task& task, const RunSettings& settings, std::string* error)
{
    if (shutting_down_) return Status(kInvalidState, "ralphd is shutting down; start the run again when it is back");
    if (auto active = store_.ActiveRunForTask(task.dir)) {
        return Status(kAlreadyRunning, "task " + task.name + " already has a " + std::string(Name(active->status)) +
                                           " run: run " + std::to_string(active->id) + " (iteration " +
                                           std::to_string(active->iteration) + "/" +
                                           std::to_string(active->max_iterations) + "); stop it with: ralph stop " +
                                           std::to_string(active->id));
    }
    RunRow row;
    row.task_name = task.name;
    row.task_dir = task.dir;
    row.project_root = task.project_root;
    row.max_iterations = settings.max_iterations;
    row.model = settings.model;
    row.agent = settings.agent;
    row.promise = settings.completion_promise;
    row.iteration_timeout_ms = settings.iteration_timeout.count();
    row.max_consecutive_failures = settings.max_consecutive_failures;
    row.max_idle_iterations = settings.max_idle_iterations;
    row.worktree_mode = settings.worktree;
    row.budget = {settings.max_cost, settings.max_tokens, settings.max_time.count()};
    row.verify = settings.verify;
    row.verify_timeout_ms = settings.verify_timeout.count();
    row.started_at = NowMillis();
    // [daemon] max_running: beyond it, the run waits its turn (SPEC §8).
    const bool queued = max_running_ > 0 && store_.CountRunning() >= max_running_;
    auto id = store_.InsertRun(row, queued);
    if (!id) return Status(kAlreadyRunning, "task " + task.name + " already has an active run");
    Event(*id, 0, "run.start",
          {{"task", task.name}, {"task_dir", task.dir}, {"project", task.project_root},
           {"max_iterations", row.max_iterations}, {"model", row.model}, {"agent", row.agent},
           {"promise", row.promise}, {"iteration_timeout_ms", row.iteration_timeout_ms},
           {"budget", BudgetJson(row.budget)}});
    if (!row.verify.empty()) Event(*id, 0, "note", Obj("message", "completion is verified by: " + row.verify));
    Log(LogLevel::Info) << "run " << *id << (queued ? " queued: " : " started: ") << task.dir;
    if (queued)
        Event(*id, 0, "note", Obj("message", "queued: " + std::to_string(max_running_) +
                                                 " runs are running ([daemon] max_running); it starts when one ends or pauses"));

    PrdStatus prd = ReadPrd(task.dir + "/prd.json");
    std::string prompt_problem = PromptProblem(task);
    if (prd.present && !prd.valid()) {
        *error = prd.error;
        Finish(*id, RunStatus::kFailed, RunReason::kTaskInvalid, prd.error);
    } else if (!prompt_problem.empty()) {
        *error = prompt_problem;
        Finish(*id, RunStatus::kFailed, RunReason::kTaskInvalid, prompt_problem);
    } else if (!queued) {
        Spawn(*id);
    }
    return *store_.GetRun(*id);
}

void LoopEngine::OnServerState(ServerState state)
{
    if ((state == ServerState::Running || state == ServerState::External) && server_.Live()) {
        for (auto& [id, a] : active_) Wake(*a);
        return;
    }
    if (state == ServerState::Starting) return;
    // The server is gone (or unhealthy): iterations in flight are interrupted.
    hub_.Close();
    for (auto& [id, a] : active_) {
        if (a->watch) a->server_lost = true;
        Wake(*a);
    }
}

void LoopEngine::ResumeLeftRuns()
{
    for (const RunRow& run : store_.RunningRuns()) {
        if (auto it = store_.UnfinishedIteration(run.id)) {
            IterationRow done = *it;
            done.outcome = OutcomeName::kInterrupted;
            done.error = "ralphd stopped during this iteration";
            done.ended_at = NowMillis();
            store_.FinishIteration(done);
            Event(run.id, it->n, "iteration.end", {{"outcome", Name(done.outcome)}, {"error", done.error}});
        }
        if (run.waiting_until) store_.SetWaitingUntil(run.id, 0);  // the wait ended with that ralphd
        Log(LogLevel::Info) << "resuming run " << run.id << " (" << run.task_name << ") after iteration " << run.iteration;
        Event(run.id, run.iteration, "note", {{"message", "ralphd restarted: the run goes on"}});
        Spawn(run.id);
    }
    resumed_ = true;
    StartQueued();  // a higher max_running, or places freed while ralphd was away
}

void LoopEngine::Spawn(int64_t run_id)
{
    if (active_.count(run_id)) {  // one loop per run, always
        Log(LogLevel::Error) << "run " << run_id << " already has a loop; not starting a second";
        return;
    }
    auto active = std::make_shared<ActiveRun>(io_.get_executor(), clock_);
    active->id = run_id;
    active_[run_id] = active;
    asio::co_spawn(io_, Loop(active), asio::detached);
}

asio::awaitable<void> LoopEngine::Shutdown()
{
    shutting_down_ = true;
    watch_wake_.Notify();
    for (auto& [id, a] : active_) Wake(*a);
    activity_.Notify();
    // Only iterations hold sessions to abort; a loop still waiting for the server to start must
    // not hold shutdown up for a start-up that no longer matters (the supervisor cancels it next).
    auto iterating = [&] {
        for (auto& [id, a] : active_)
            if (a->iterating) return true;
        return false;
    };
    auto deadline = clock_.Now() + std::chrono::seconds(30);
    while (iterating() && clock_.Now() < deadline) co_await activity_.WaitFor(std::chrono::milliseconds(50));
    hub_.Close();
}

asio::awaitable<void> LoopEngine::WaitStopped()
{
    EndHooks();  // a hook that hangs must not hold ralphd's exit up
    auto deadline = clock_.Now() + std::chrono::seconds(10);
    while ((!active_.empty() || hooks_running_ > 0) && clock_.Now() < deadline) {
        for (auto& [id, a] : active_) Wake(*a);
        co_await activity_.WaitFor(std::chrono::milliseconds(50));
    }
    if (!active_.empty()) Log(LogLevel::Error) << active_.size() << " loops did not stop within 10s of shutdown";
}

asio::awaitable<void> LoopEngine::Loop(std::shared_ptr<ActiveRun> active)
{
    // Nothing may escape into the io_context: an unexpected error (a full disk, say) is logged
    // and the run picks up again a little later, from what the store says.
    for (;;) {
        bool failed = false;
        try {
            co_await RunIterations(*active);
        } catch (const std::exception& e) {
            Log(LogLevel::Error) << "run " << active->id << ": " << e.what() << "; retrying in 5s";
            failed = true;
        }
        if (!failed || shutting_down_) break;
        co_await active->wake.WaitFor(std::chrono::seconds(5));
    }
    if (active->repo) {
        auto run = store_.GetRun(active->id);
        if (!run || run->status != RunStatus::kRunning) Checkpoints::Forget(*active->repo);  // a cache for this run only
    }
    active_.erase(active->id);
    activity_.Notify();
}

asio::awaitable<void> LoopEngine::RunIterations(ActiveRun& active_run)
{
    ActiveRun* active = &active_run;
    const int64_t id = active->id;
    ServerAccess& supervisor = server_;
    for (;;) {
        std::optional<RunRow> run = store_.GetRun(id);
        if (active->unsettled) {
            // The end of the last iteration could not be recorded before: record it now, so that
            // its outcome counts and it is never left looking unfinished behind the next one.
            if (!run || run->status != RunStatus::kRunning) break;
            if (Settle(*active, *run)) break;
            continue;
        }
        if (!run || run->status != RunStatus::kRunning || shutting_down_) break;
        if (co_await EndedBeforeIteration(*active, *run)) break;
        if (!active->checkpoints_prepared) {
            // Before its first iteration: a worktree of its own if it needs one, then its base
            // snapshot (SPEC §9). A run that ends on the checks above needs neither.
            if (!co_await PrepareWorktree(*run)) break;
            co_await PrepareCheckpoints(*active, *run);
            continue;  // the run as it is now, worktree included
        }

        // The server, started on demand; while it restarts the run waits, and `fatal` ends it.
        Result<ServerEndpoint> server = co_await supervisor.Ensure();
        if (!server) {
            if (shutting_down_) break;  // the server went with the daemon: no verdict on the run
            if (supervisor.state() == ServerState::Fatal) {
                Finish(id, RunStatus::kFailed, RunReason::kServerUnavailable, server.status().message());
                break;
            }
            Log(LogLevel::Debug) << "run " << id << " waits for the server: " << server.status().message();
            co_await active->wake.WaitFor(std::chrono::seconds(1));
            continue;
        }

        if (shutting_down_) break;  // the server came up while ralphd was stopping: no new iteration
        if (draining_) {
            // The server restarts for its memory once the iterations in flight end (SPEC §8).
            co_await active->wake.WaitFor(std::chrono::seconds(1));
            continue;
        }
        // A stop asked while the server was starting ends the run now, not after one more iteration.
        if (auto fresh = store_.GetRun(id); fresh && !fresh->stop_requested.empty()) continue;

        co_await BeforeIteration(*active);
        const int n = run->iteration + 1;
        active->stop_now = run->stop_requested == "now";
        active->pause_now = run->pause_requested == "now";
        IterationResult result;
        const uint64_t stops_before = supervisor.stops_begun();
        struct Iterating {
            ActiveRun& a;
            Notifier& activity;
            explicit Iterating(ActiveRun& run, Notifier& n) : a(run), activity(n) { a.iterating = true; }
            ~Iterating()
            {
                a.iterating = false;
                activity.Notify();
            }
        };
        try {
            Iterating iterating(*active, activity_);
            result = co_await Iterate(*active, *run, n);
        } catch (const StoreError&) {
            throw;
        } catch (const std::exception& e) {
            // Recorded as a failed iteration when its row exists; otherwise tried again shortly.
            auto unfinished = store_.UnfinishedIteration(id);
            result.recorded = unfinished && unfinished->n == n;
            result.outcome = OutcomeName::kError;
            result.error = e.what();
            Log(LogLevel::Error) << "run " << id << " iteration " << n << ": " << e.what();
        }
        if (result.outcome == OutcomeName::kError && supervisor.stops_begun() != stops_before) {
            // `ralph server stop` or `restart` aborted the session (MessageAbortedError, a reset
            // connection): the server went away, the iteration did not fail (SPEC §8).
            result.outcome = OutcomeName::kInterrupted;
            result.error = "the opencode server was stopped during this iteration (" + supervisor.last_stop_why() + ")";
        }
        if (!result.recorded) {
            // No session could be created: the server went away; try again once it is back.
            co_await active->wake.WaitFor(std::chrono::seconds(1));
            continue;
        }
        IterationRow done;
        done.run_id = id;
        done.n = n;
        done.outcome = result.outcome;
        done.error = result.error;
        done.promise_seen = result.promise;
        done.tokens_in = result.tokens_in;
        done.tokens_out = result.tokens_out;
        done.tokens_reasoning = result.tokens_reasoning;
        done.cost = result.cost;
        done.ended_at = NowMillis();
        active->budget_crossed = result.budget;
        co_await CheckpointIteration(*active, done);
        co_await VerifyIteration(*active, *run, done);
        active->unsettled = done;
        active->unsettled_recorded = false;
        if (Settle(*active, *run)) break;
        if (co_await BackOff(*active, done)) break;
    }
}

asio::awaitable<void> LoopEngine::Abort(const std::string& session_id, const std::string& directory)
{
    auto live = server_.Live();
    if (!live) co_return;
    std::unique_ptr<OpencodeClient> opencode = clients_(*live);
    Status aborted = co_await opencode->Abort(session_id, directory);
    if (!aborted.ok()) Log(LogLevel::Debug) << "aborting session " << session_id << ": " << aborted.message();
}

asio::awaitable<LoopEngine::IterationResult> LoopEngine::Iterate(ActiveRun& active, const RunRow& run, int n)
{
    IterationResult result;
    auto live = server_.Live();
    if (!live) {
        result.recorded = false;
        co_return result;
    }
    const ServerEndpoint server = *live;
    std::unique_ptr<OpencodeClient> opencode = clients_(server);

    // The tree it works in: its worktree, or the project (SPEC §9); the prompt names its paths.
    const std::string root = run.work_root();
    Task task{run.task_name, run.work_task_dir(), root};
    PrdStatus prd = ReadPrd(task.dir + "/prd.json");
    std::string prompt = RenderPrompt(LoadPromptTemplate(task), PromptVars{task, run.id, n, run.max_iterations,
                                                                           run.promise, prd.branch_name,
                                                                           active.verify_output});
    active.verify_output.clear();  // said once, in the prompt after the failed verification

    // 1. A fresh session in the project, with rules that can never block an unattended loop.
    json::object create = opencode_api::SessionBody("ralph: " + run.task_name + " run " + std::to_string(run.id) + " #" + std::to_string(n));
    Result<std::string> created = co_await opencode->CreateSession(root, create);
    std::string session_id;
    if (created) session_id = *created;
    if (session_id.empty()) {
        if (!server_.Live()) {
            result.recorded = false;
            co_return result;
        }
        // Record the failed attempt as an iteration so that the failure limit applies.
        BeginIteration(run.id, n, "", server.port);
        result.outcome = OutcomeName::kError;
        result.error = "could not create an opencode session: " + created.status().message();
        co_return result;
    }

    // 2. Record the iteration with its session before prompting, so attach can find it.
    BeginIteration(run.id, n, session_id, server.port);

    EventHub::Watch watch(io_.get_executor());
    watch.session_id = session_id;
    hub_.Add(&watch);
    active.watch = &watch;
    active.server_lost = false;
    struct Cleanup {
        EventHub& hub;
        EventHub::Watch& watch;
        ActiveRun& active;
        ~Cleanup()
        {
            hub.Remove(&watch);
            active.watch = nullptr;
        }
    } cleanup{hub_, watch, active};

    // 3. Subscribe before prompting, then prompt asynchronously.
    if (!co_await hub_.Connect(server, std::chrono::seconds(10))) {
        result.outcome = server_.Live() ? OutcomeName::kError : OutcomeName::kInterrupted;
        result.error = "could not open the server's event stream";
        co_return result;
    }
    json::object prompt_body = opencode_api::PromptBody(prompt, run.model, run.agent);
    Status prompted = co_await opencode->Prompt(session_id, root, prompt_body);
    if (!prompted.ok()) {
        result.outcome = server_.Live() ? OutcomeName::kError : OutcomeName::kInterrupted;
        result.error = "opencode refused the prompt: " + prompted.message();
        co_return result;
    }

    // 4. Wait for the session to go idle, feeding its events and the time to the iteration's
    // logic and doing what it says (SPEC §8: stop --now, the timeouts, the stall rules).
    Clock& clock = clock_;
    IterationMachine machine({Millis(run.iteration_timeout_ms), StallTimeout(run_defaults_, task), root,
                              run.promise, run.budget, Spent(run)},
                             clock.Now());
    std::optional<IterationOutcome> finished;
    auto perform = [&](IterationActions actions) -> asio::awaitable<void> {
        for (IterationAction& action : actions) {
            switch (action.kind) {
            case IterationAction::Kind::Log: Event(run.id, n, action.log_kind, std::move(action.data)); break;
            case IterationAction::Kind::RejectPermission: {
                Status replied = co_await opencode->ReplyPermission(action.request_id, root, "reject",
                                                                    kRejectMessage);
                if (!replied.ok()) Log(LogLevel::Debug) << "rejecting permission " << action.request_id << ": " << replied.message();
                break;
            }
            case IterationAction::Kind::RejectQuestion: {
                Status rejected = co_await opencode->RejectQuestion(action.request_id, root);
                if (!rejected.ok()) Log(LogLevel::Debug) << "rejecting question " << action.request_id << ": " << rejected.message();
                break;
            }
            case IterationAction::Kind::Abort:
                co_await Abort(session_id, root);
                machine.AbortSent(clock.Now());
                break;
            case IterationAction::Kind::Finish: finished = std::move(action.outcome); break;
            }
        }
    };
    auto finish = [&result](const IterationOutcome& outcome) {
        result.outcome = outcome.outcome;
        result.error = outcome.error;
        result.promise = outcome.promise;
        result.tokens_in = outcome.tokens_in;
        result.tokens_out = outcome.tokens_out;
        result.tokens_reasoning = outcome.tokens_reasoning;
        result.cost = outcome.cost;
        result.budget = outcome.budget;
        return result;
    };
    for (;;) {
        while (!watch.events.empty()) {
            json::object ev = std::move(watch.events.front());
            watch.events.pop_front();
            co_await perform(machine.OnEvent(ev, clock.Now()));
        }
        if (machine.idle()) break;
        IterationActions checked = machine.Check({active.server_lost, shutting_down_, server_.Live().has_value(),
                                                  active.stop_now, active.pause_now},
                                                 clock.Now());
        if (!checked.empty()) {
            co_await perform(std::move(checked));
            if (finished) co_return finish(*finished);
            continue;
        }
        if (machine.done_waiting(clock.Now())) break;
        if (watch.resync) {
            // Events may have been lost while the stream was down: ask whether the session is still busy.
            watch.resync = false;
            Result<json::value> busy = co_await opencode->SessionStatus(root);
            if (busy && !At(*busy, session_id.c_str())) {
                machine.SessionNotBusy();
                break;
            }
            continue;
        }
        // Wake on events, on stop, server loss or shutdown, at the deadlines, and each minute to re-check.
        co_await watch.notifier.WaitUntil(machine.WakeAt(clock.Now()));
    }

    // 5. Read what happened: errors, the promise, tokens and cost.
    Result<json::value> messages = co_await opencode->Messages(session_id, root);
    if (messages) {
        co_await perform(machine.Conclude(*messages));
    } else {
        co_await perform(machine.ConcludeUnread(messages.status().message(), server_.Live().has_value()));
    }
    co_return finish(*finished);
}

}  // namespace ralph
