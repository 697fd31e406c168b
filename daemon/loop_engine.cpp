#include "daemon/loop_engine.h"

#include "common/errors.h"
#include "common/json_util.h"
#include "common/log.h"
#include "daemon/run_checks.h"
#include "daemon/tool_result.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <set>
#include <sys/stat.h>

namespace ralph {

namespace json = boost::json;
namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr auto kAbortGrace = std::chrono::seconds(15);

bool IsDirectory(const std::string& path)
{
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/// "APIError: Incorrect API key provided" from opencode's error object.
std::string DescribeError(const json::value& error)
{
    std::string name = Str(At(error, "name"));
    std::string message = Str(At(error, "data", "message"));
    if (name.empty()) return message.empty() ? json::serialize(error) : message;
    return message.empty() ? name : name + ": " + message;
}

// GCC 12 miscompiles nested braced JSON initialisers inside coroutines ("array used as
// initializer"), so request bodies are built here, outside them.

/// A fresh session in the project, with rules that can never block an unattended loop
/// (opencode-server-facts.md §8); anything still asked is rejected by the iteration.
json::object SessionBody(const RunRow& run, int n)
{
    json::array rules;
    for (auto [permission, action] : {std::pair{"external_directory", "allow"}, std::pair{"question", "deny"},
                                      std::pair{"doom_loop", "allow"}}) {
        rules.push_back(json::object{{"permission", permission}, {"pattern", "*"}, {"action", action}});
    }
    json::object body;
    body["title"] = "ralph: " + run.task_name + " run " + std::to_string(run.id) + " #" + std::to_string(n);
    body["permission"] = std::move(rules);
    return body;
}

/// The prompt, with the model as the nested object opencode reads (flat fields are ignored).
json::object PromptBody(const std::string& text, const std::string& model, const std::string& agent)
{
    json::object part;
    part["type"] = "text";
    part["text"] = text;
    json::object body;
    body["parts"] = json::array{part};
    if (auto slash = model.find('/'); slash != std::string::npos) {
        json::object m;
        m["providerID"] = model.substr(0, slash);
        m["modelID"] = model.substr(slash + 1);
        body["model"] = std::move(m);
    }
    if (!agent.empty()) body["agent"] = agent;
    return body;
}

const char* kRejectMessage =
    "ralph runs this loop unattended and answers no permission request or question: "
    "continue without it, or write what you need into the task's progress file.";

}  // namespace

bool ContainsPromise(const std::string& text, const std::string& promise)
{
    static const std::string open = "<promise>", close = "</promise>";
    auto trim = [](std::string_view s) {
        auto first = s.find_first_not_of(" \t\r\n");
        if (first == std::string_view::npos) return std::string_view();
        return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
    };
    // Whitespace around the promise is no part of it, on either side (found by fuzz_task: a
    // promise given as "DONE " could never be matched).
    std::string_view wanted = trim(promise);
    if (wanted.empty()) return false;
    std::size_t pos = 0;
    while ((pos = text.find(open, pos)) != std::string::npos) {
        std::size_t start = pos + open.size();
        std::size_t end = text.find(close, start);
        if (end == std::string::npos) return false;
        if (trim(std::string_view(text).substr(start, end - start)) == wanted) return true;
        pos = end + close.size();
    }
    return false;
}

struct LoopEngine::ActiveRun {
    ActiveRun(asio::any_io_executor ex, Clock& clock) : wake(std::move(ex), clock) {}
    int64_t id{0};
    bool stop_now{false};
    bool server_lost{false};  ///< the server went away during the current iteration
    bool iterating{false};    ///< inside Iterate(): a session may be in flight
    /// An iteration that ended but whose end is not yet recorded and acted on (the store failed:
    /// a full disk, a locked database). Settled before anything else when the loop picks up again.
    std::optional<IterationRow> unsettled;
    bool unsettled_recorded{false};  ///< its row and iteration.end event are written already
    Notifier wake;            ///< stop --now, server loss, shutdown
    EventHub::Watch* watch{nullptr};
};

void LoopEngine::Wake(ActiveRun& active)
{
    active.wake.Notify();
    if (active.watch) active.watch->notifier.Notify();
}

struct LoopEngine::IterationResult {
    std::string outcome{"continue"};
    std::string error;
    bool promise{false};
    int64_t tokens_in{0}, tokens_out{0};
    double cost{0};
    bool recorded{true};  ///< false when no iteration row was written (no session could be made)
};

LoopEngine::LoopEngine(asio::io_context& io, RunStore& store, ServerAccess& server, const RunSettings& run_defaults,
                       Clock& clock, OpencodeClientFactory clients, Millis idle_stop)
    : io_(io), store_(store), server_(server), run_defaults_(run_defaults), clock_(clock), idle_stop_(idle_stop),
      clients_(std::move(clients)), hub_(io, server, clients_), activity_(io.get_executor(), clock),
      last_busy_(clock.Now())
{
    server_.Subscribe([this](ServerState s) { OnServerState(s); });
    if (idle_stop_.count() > 0) asio::co_spawn(io_, StopIdleServer(), asio::detached);
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
            try {
                co_await server_.Stop();
            } catch (const std::exception& e) {
                Log(LogLevel::Warning) << "idle stop: " << e.what();
            }
            last_busy_ = clock_.Now();
        }
        auto next = std::min<SteadyClock::duration>(std::max<SteadyClock::duration>(idle_stop - idle_for, std::chrono::milliseconds(100)),
                                              std::chrono::seconds(30));
        co_await activity_.WaitFor(next);
    }
}

LoopEngine::~LoopEngine() = default;

void LoopEngine::Event(int64_t run_id, int iteration, const std::string& kind, json::object data)
{
    try {
        store_.AppendEvent(run_id, iteration, kind, json::serialize(data), NowMillis());
    } catch (const StoreError& e) {
        Log(LogLevel::Error) << "run " << run_id << ": cannot record event " << kind << ": " << e.what();
    }
    activity_.Notify(run_id);
}

void LoopEngine::Finish(int64_t run_id, const std::string& status, const std::string& reason, const std::string& message)
{
    auto run = store_.GetRun(run_id);
    if (!store_.FinishRun(run_id, status, reason, NowMillis())) return;
    json::object data{{"status", status}, {"reason", reason}};
    if (!message.empty()) data["message"] = message;
    Event(run_id, run ? run->iteration : 0, "run.end", std::move(data));
    Log(LogLevel::Info) << "run " << run_id << " " << status << " (" << reason << ")"
                        << (message.empty() ? "" : ": " + message);
}

RunRow LoopEngine::Start(const Task& task, const RunSettings& settings, std::string* error)
{
    if (shutting_down_) throw RpcError(kInvalidState, "ralphd is shutting down; start the run again when it is back");
    if (auto running = store_.RunningRunForTask(task.dir)) {
        throw RpcError(kAlreadyRunning, "task " + task.name + " already has a running run: run " +
                                            std::to_string(running->id) + " (iteration " +
                                            std::to_string(running->iteration) + "/" +
                                            std::to_string(running->max_iterations) + "); stop it with: ralph stop " +
                                            std::to_string(running->id));
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
    row.started_at = NowMillis();
    auto id = store_.InsertRun(row);
    if (!id) throw RpcError(kAlreadyRunning, "task " + task.name + " already has a running run");
    Event(*id, 0, "run.start",
          {{"task", task.name}, {"task_dir", task.dir}, {"project", task.project_root},
           {"max_iterations", row.max_iterations}, {"model", row.model}, {"agent", row.agent},
           {"promise", row.promise}, {"iteration_timeout_ms", row.iteration_timeout_ms}});
    Log(LogLevel::Info) << "run " << *id << " started: " << task.dir;

    PrdStatus prd = ReadPrd(task.dir + "/prd.json");
    std::string prompt_problem = PromptProblem(task);
    if (prd.present && !prd.valid()) {
        *error = prd.error;
        Finish(*id, "failed", "task_invalid", prd.error);
    } else if (!prompt_problem.empty()) {
        *error = prompt_problem;
        Finish(*id, "failed", "task_invalid", prompt_problem);
    } else {
        Spawn(*id);
    }
    return *store_.GetRun(*id);
}

bool LoopEngine::Stop(int64_t run_id, bool now)
{
    if (!store_.RequestStop(run_id, now)) return false;
    Event(run_id, store_.GetRun(run_id)->iteration, "note",
          {{"message", now ? "stop requested: aborting the current iteration"
                           : "stop requested: the run stops after the current iteration"}});
    if (auto it = active_.find(run_id); it != active_.end() && now) {
        it->second->stop_now = true;
        Wake(*it->second);
    }
    return true;
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
            done.outcome = "interrupted";
            done.error = "ralphd stopped during this iteration";
            done.ended_at = NowMillis();
            store_.FinishIteration(done);
            Event(run.id, it->n, "iteration.end", {{"outcome", "interrupted"}, {"error", done.error}});
        }
        Log(LogLevel::Info) << "resuming run " << run.id << " (" << run.task_name << ") after iteration " << run.iteration;
        Event(run.id, run.iteration, "note", {{"message", "ralphd restarted: the run goes on"}});
        Spawn(run.id);
    }
}

void LoopEngine::Spawn(int64_t run_id)
{
    auto active = std::make_shared<ActiveRun>(io_.get_executor(), clock_);
    active->id = run_id;
    active_[run_id] = active;
    asio::co_spawn(io_, Loop(active), asio::detached);
}

asio::awaitable<void> LoopEngine::Shutdown()
{
    shutting_down_ = true;
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
    auto deadline = clock_.Now() + std::chrono::seconds(10);
    while (!active_.empty() && clock_.Now() < deadline) {
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
            if (!run || run->status != "running") break;
            if (Settle(*active, *run)) break;
            continue;
        }
        if (!run || run->status != "running" || shutting_down_) break;
        if (!run->stop_requested.empty()) {
            Finish(id, "stopped", "user");
            break;
        }
        if (run->iteration >= run->max_iterations) {
            Finish(id, "stopped", "max_iterations");
            break;
        }
        PrdStatus prd = ReadPrd(run->task_dir + "/prd.json");
        if (prd.present && !prd.valid()) {
            Finish(id, "failed", "task_invalid", prd.error);
            break;
        }
        if (prd.complete()) {
            Finish(id, "completed", "prd_complete");
            break;
        }
        if (!IsDirectory(run->task_dir) || !IsDirectory(run->project_root)) {
            Finish(id, "failed", "task_invalid",
                   "the task directory " + run->task_dir + " or its project " + run->project_root + " no longer exists");
            break;
        }
        // The prompt may have been emptied or replaced by a directory since the run started.
        if (auto problem = PromptProblem(Task{run->task_name, run->task_dir, run->project_root}); !problem.empty()) {
            Finish(id, "failed", "task_invalid", problem);
            break;
        }

        // The server, started on demand; while it restarts the run waits, and `fatal` ends it.
        bool have_server = false;
        try {
            co_await supervisor.Ensure();
            have_server = true;
        } catch (const RpcError& e) {
            if (shutting_down_) break;  // the server went with the daemon: no verdict on the run
            if (supervisor.state() == ServerState::Fatal) {
                Finish(id, "failed", "server_unavailable", e.what());
                break;
            }
            Log(LogLevel::Debug) << "run " << id << " waits for the server: " << e.what();
        }
        if (!have_server) {
            co_await active->wake.WaitFor(std::chrono::seconds(1));
            continue;
        }

        if (shutting_down_) break;  // the server came up while ralphd was stopping: no new iteration
        // A stop asked while the server was starting ends the run now, not after one more iteration.
        if (auto fresh = store_.GetRun(id); fresh && !fresh->stop_requested.empty()) continue;

        const int n = run->iteration + 1;
        active->stop_now = run->stop_requested == "now";
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
            result.outcome = "error";
            result.error = e.what();
            Log(LogLevel::Error) << "run " << id << " iteration " << n << ": " << e.what();
        }
        if (result.outcome == "error" && supervisor.stops_begun() != stops_before) {
            // `ralph server stop` or `restart` aborted the session (MessageAbortedError, a reset
            // connection): the server went away, the iteration did not fail (SPEC §8).
            result.outcome = "interrupted";
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
        done.cost = result.cost;
        done.ended_at = NowMillis();
        active->unsettled = done;
        active->unsettled_recorded = false;
        if (Settle(*active, *run)) break;
    }
}

bool LoopEngine::Settle(ActiveRun& active, const RunRow& run)
{
    const IterationRow& done = *active.unsettled;
    const int64_t id = run.id;
    if (!active.unsettled_recorded) {
        store_.FinishIteration(done);
        json::object end = Obj("outcome", done.outcome, "promise", done.promise_seen, "tokens_in", done.tokens_in,
                               "tokens_out", done.tokens_out, "cost", done.cost);
        if (!done.error.empty()) end["error"] = done.error;
        Event(id, done.n, "iteration.end", std::move(end));
        if (done.outcome == "error" || done.outcome == "timeout") {
            AppendToFile(run.task_dir + "/progress.txt",
                         "\n## ralph: iteration " + std::to_string(done.n) + " of run " + std::to_string(id) + " failed (" +
                             done.outcome + ")\n" + done.error + "\n");
        }
        active.unsettled_recorded = true;
    }
    // Decide.
    bool ended = true;
    if (shutting_down_ && done.outcome == "interrupted") {
        // left running, to resume on the next start
    } else if (done.outcome == "complete") {
        Finish(id, "completed", "promise");
    } else if (auto after = store_.GetRun(id); after && after->status == "running") {
        if (after->consecutive_failures >= after->max_consecutive_failures) {
            Finish(id, "failed", "consecutive_failures",
                   std::to_string(after->consecutive_failures) + " iterations failed in a row; the last: " + done.error);
        } else {
            // prd.json, re-read (the agent may have completed the stories or broken the file) and
            // stop requests are checked at the top of the loop, as is the iteration limit.
            ended = false;
        }
    }
    active.unsettled.reset();
    return ended;
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

    Task task{run.task_name, run.task_dir, run.project_root};
    PrdStatus prd = ReadPrd(run.task_dir + "/prd.json");
    std::string prompt = RenderPrompt(LoadPromptTemplate(task), PromptVars{task, run.id, n, run.max_iterations,
                                                                           run.promise, prd.branch_name});

    // 1. A fresh session in the project, with rules that can never block an unattended loop.
    json::object create = SessionBody(run, n);
    Result<std::string> created = co_await opencode->CreateSession(run.project_root, create);
    std::string session_id;
    if (created) session_id = *created;
    if (session_id.empty()) {
        if (!server_.Live()) {
            result.recorded = false;
            co_return result;
        }
        // Record the failed attempt as an iteration so that the failure limit applies.
        store_.BeginIteration(run.id, n, "", server.port, NowMillis());
        Event(run.id, n, "iteration.start", Obj("session", "", "port", server.port));
        result.outcome = "error";
        result.error = "could not create an opencode session: " + created.status().message();
        co_return result;
    }

    // 2. Record the iteration with its session before prompting, so attach can find it.
    store_.BeginIteration(run.id, n, session_id, server.port, NowMillis());
    Event(run.id, n, "iteration.start", Obj("session", session_id, "port", server.port));

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
        result.outcome = server_.Live() ? "error" : "interrupted";
        result.error = "could not open the server's event stream";
        co_return result;
    }
    json::object prompt_body = PromptBody(prompt, run.model, run.agent);
    Status prompted = co_await opencode->Prompt(session_id, run.project_root, prompt_body);
    if (!prompted.ok()) {
        result.outcome = server_.Live() ? "error" : "interrupted";
        result.error = "opencode refused the prompt: " + prompted.message();
        co_return result;
    }

    // 4. Wait for the session to go idle, watching its events. An iteration that never starts
    // (no busy status, no assistant message), or whose error is never followed by idle, would
    // otherwise wait for the whole iteration timeout (SPEC §8): stall_timeout ends both.
    const auto deadline = SteadyClock::now() + std::chrono::milliseconds(run.iteration_timeout_ms);
    const Millis stall_timeout = StallTimeout(run_defaults_, task);
    const auto stall_deadline = SteadyClock::now() + stall_timeout;
    bool started = false;
    std::optional<SteadyClock::time_point> error_deadline;  ///< set by session.error: idle must follow
    std::optional<SteadyClock::time_point> abort_deadline;
    bool idle = false;
    bool aborted_by_us = false;
    std::set<std::string> user_messages, logged_parts;
    std::string session_error;
    auto abort = [&](const std::string& outcome, const std::string& why,
                     SteadyClock::duration grace = kAbortGrace) -> asio::awaitable<void> {
        if (aborted_by_us) co_return;
        aborted_by_us = true;
        result.outcome = outcome;
        result.error = why;
        Event(run.id, n, "note", Obj("message", why));
        co_await Abort(session_id, run.project_root);
        abort_deadline = SteadyClock::now() + grace;
    };
    while (!idle) {
        while (!watch.events.empty()) {
            json::object ev = std::move(watch.events.front());
            watch.events.pop_front();
            std::string type = Str(ev.if_contains("type"));
            const json::value props = ev["properties"];
            if (type == "session.idle") {
                idle = true;
            } else if (type == "session.status") {
                std::string status = Str(At(props, "status", "type"));
                if (status == "busy" || status == "retry") started = true;
                if (status == "busy") error_deadline.reset();  // working again after the error: no stall
                if (status == "idle") idle = true;
                else if (status == "retry")
                    Event(run.id, n, "note",
                          Obj("message", "the model failed and opencode retries (attempt " +
                                           std::to_string(Int(At(props, "status", "attempt"))) +
                                           "): " + Str(At(props, "status", "message"))));
            } else if (type == "session.error") {
                if (auto* err = At(props, "error")) {
                    std::string name = Str(At(*err, "name"));
                    // The first error says most ("Agent not found: ..."); opencode may add a stack trace.
                    if (!(aborted_by_us && name == "MessageAbortedError") && session_error.empty())
                        session_error = DescribeError(*err);
                    if (!error_deadline) error_deadline = SteadyClock::now() + stall_timeout;
                }
            } else if (type == "permission.asked") {
                std::string rid = Str(At(props, "id"));
                Event(run.id, n, "note", Obj("message", "rejected a permission request (" + Str(At(props, "permission")) +
                                                          ") since the loop runs unattended"));
                Status replied = co_await opencode->ReplyPermission(rid, run.project_root, "reject", kRejectMessage);
                if (!replied.ok()) Log(LogLevel::Debug) << "rejecting permission " << rid << ": " << replied.message();
            } else if (type == "question.asked") {
                std::string rid = Str(At(props, "id"));
                Event(run.id, n, "note", Obj("message", "rejected a question since the loop runs unattended"));
                Status rejected = co_await opencode->RejectQuestion(rid, run.project_root);
                if (!rejected.ok()) Log(LogLevel::Debug) << "rejecting question " << rid << ": " << rejected.message();
            } else if (type == "message.updated") {
                if (Str(At(props, "info", "role")) == "user") user_messages.insert(Str(At(props, "info", "id")));
                else started = true;
            } else if (type == "message.part.updated") {
                const json::value* part = At(props, "part");
                if (!part || user_messages.count(Str(At(*part, "messageID")))) continue;
                std::string part_type = Str(At(*part, "type"));
                std::string part_id = Str(At(*part, "id"));
                if (part_type == "tool") {
                    std::string status = Str(At(*part, "state", "status"));
                    if ((status == "completed" || status == "error") && logged_parts.insert(part_id).second)
                        Event(run.id, n, "tool", ToolEventData(*part, run.project_root));
                } else if (part_type == "text" && At(*part, "time", "end") && !At(*part, "synthetic") &&
                           logged_parts.insert(part_id).second) {
                    Event(run.id, n, "text", Obj("text", Str(At(*part, "text"))));
                }
            }
        }
        if (idle) break;
        if (active.server_lost || (shutting_down_ && !aborted_by_us)) {
            if (shutting_down_ && server_.Live()) co_await Abort(session_id, run.project_root);
            result.outcome = "interrupted";
            result.error = active.server_lost ? "the opencode server went away during this iteration"
                                              : "ralphd stopped during this iteration";
            co_return result;
        }
        if (active.stop_now && !aborted_by_us) {
            co_await abort("aborted", "stopped at once by ralph stop --now");
            continue;
        }
        if (SteadyClock::now() >= deadline && !aborted_by_us) {
            co_await abort("timeout", "the iteration took longer than " +
                                          FormatDuration(Millis(run.iteration_timeout_ms)) + " and was aborted");
            continue;
        }
        const bool error_stuck = error_deadline && SteadyClock::now() >= *error_deadline;
        const bool never_started = !started && SteadyClock::now() >= stall_deadline;
        if ((error_stuck || never_started) && !aborted_by_us) {
            // Nothing runs in the session: end at once, with opencode's own error when it gave one.
            // (The message is built outside co_await: GCC 12 double-frees temporaries of a
            // conditional expression inside one.)
            std::string why = StallMessage(session_error, stall_timeout);
            co_await abort("error", why, SteadyClock::duration::zero());
            continue;
        }
        if (abort_deadline && SteadyClock::now() >= *abort_deadline) break;  // aborted but never went idle
        if (watch.resync) {
            // Events may have been lost while the stream was down: ask whether the session is still busy.
            watch.resync = false;
            Result<json::value> busy = co_await opencode->SessionStatus(run.project_root);
            if (busy && !At(*busy, session_id.c_str())) idle = true;
            continue;
        }
        // Wake on events, on stop, server loss or shutdown, at the deadline, and each minute to re-check.
        auto wake_at = aborted_by_us ? *abort_deadline : deadline;
        if (!aborted_by_us && !started) wake_at = std::min(wake_at, stall_deadline);
        if (!aborted_by_us && error_deadline) wake_at = std::min(wake_at, *error_deadline);
        co_await watch.notifier.WaitUntil(std::min(wake_at, SteadyClock::now() + std::chrono::seconds(60)));
    }

    // 5. Read what happened: errors, the promise, tokens and cost.
    Result<json::value> messages = co_await opencode->Messages(session_id, run.project_root);
    if (!messages) {
        if (aborted_by_us) co_return result;
        result.outcome = server_.Live() ? "error" : "interrupted";
        result.error = "could not read the session's messages: " + messages.status().message();
        co_return result;
    }
    json::value all = std::move(*messages);
    const json::value* last_assistant = nullptr;
    std::string message_error;
    if (all.is_array()) {
        for (const json::value& m : all.as_array()) {
            const json::value* info = At(m, "info");
            if (!info || Str(At(*info, "role")) != "assistant") continue;
            last_assistant = &m;
            result.tokens_in += Int(At(*info, "tokens", "input"));
            result.tokens_out += Int(At(*info, "tokens", "output"));
            result.cost += Real(At(*info, "cost"));
            if (auto* err = At(*info, "error"); err && !err->is_null()) {
                if (!(aborted_by_us && Str(At(*err, "name")) == "MessageAbortedError")) message_error = DescribeError(*err);
            }
            if (auto* parts = At(m, "parts"); parts && parts->is_array()) {
                for (const json::value& part : parts->as_array()) {
                    std::string part_type = Str(At(part, "type"));
                    std::string part_id = Str(At(part, "id"));
                    if (part_type == "text") {
                        std::string text = Str(At(part, "text"));
                        if (ContainsPromise(text, run.promise)) result.promise = true;
                        if (logged_parts.insert(part_id).second && !text.empty())
                            Event(run.id, n, "text", Obj("text", text));
                    } else if (part_type == "tool" && logged_parts.insert(part_id).second) {
                        Event(run.id, n, "tool", ToolEventData(part, run.project_root));
                    }
                }
            }
        }
    }
    if (aborted_by_us) co_return result;  // timeout or stop --now, decided above
    if (!session_error.empty() || !message_error.empty()) {
        result.outcome = "error";
        result.error = !message_error.empty() ? message_error : session_error;
        result.promise = false;
    } else if (!last_assistant) {
        result.outcome = "error";
        result.error = "the agent gave no answer";
    } else if (!At(*last_assistant, "info", "time", "completed")) {
        result.outcome = "error";
        result.error = "the agent's last answer never finished";
    } else {
        result.outcome = result.promise ? "complete" : "continue";
    }
    if (!result.error.empty()) Event(run.id, n, "error", Obj("message", result.error));
    co_return result;
}

}  // namespace ralph
