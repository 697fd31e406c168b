// attach.*: where `ralph attach` points the opencode TUI. Read-only by contract: nothing here
// writes to the runs or iterations tables (only the loop engine and `stop` change a run), so
// attaching can never rewrite history. It may start the server, which is what keeps a finished
// loop's sessions inspectable.
#include "common/errors.h"
#include "common/json_util.h"
#include "common/paths.h"
#include "daemon/daemon.h"
#include "daemon/opencode_client.h"
#include "daemon/rpc_table.h"
#include "daemon/run_view.h"
#include "daemon/server_supervisor.h"
#include "daemon/store.h"
#include "daemon/task.h"

#include <climits>
#include <cstdlib>

namespace ralph {

namespace {

/// What to attach to, decided from the store alone before the server is touched.
struct AttachPlan {
    std::optional<RunRow> run;
    std::string session;    ///< "" : opencode's home screen in `directory`
    int iteration{0};       ///< the iteration that recorded `session`, 0 when unknown
    std::string directory;  ///< the project the TUI works in
    std::string note;       ///< said on stderr by the client; "" for nothing
};

constexpr const char* kSessionListHint = " (its session list for this project: /sessions or ctrl+x l)";

std::string Real(const std::string& path)
{
    std::string real = RealPath(path);
    return real.empty() ? path : real;
}

/// How the user starts a run's task again: its name from within its project, else its path.
std::string RunAgainCommand(const RunRow& run, const std::string& cwd)
{
    std::string root = cwd.empty() ? std::string() : GitRoot(cwd);
    bool same_project = !root.empty() && root == run.project_root;
    return "ralph run " + (same_project ? run.task_name : run.task_dir);
}

std::string SessionList(const std::vector<IterationRow>& its, const RunRow& run)
{
    std::string out;
    for (const IterationRow& it : its) {
        if (it.session_id.empty()) continue;
        out += (out.empty() ? "" : ", ") + it.session_id + " (iteration " + std::to_string(it.n) + ")";
    }
    if (out.empty() && !run.session_id.empty()) out = run.session_id;
    return out;
}

AttachPlan PlanAttach(Daemon& d, const json::object& params)
{
    RunStore& store = d.store();
    std::string cwd = ParamString(params, "cwd");
    std::string session = ParamString(params, "session");
    bool latest = ParamBool(params, "latest");
    const json::value* run_ref = params.if_contains("run");
    if (run_ref && run_ref->is_null()) run_ref = nullptr;
    if (latest && run_ref) throw RpcError(kInvalidParams, "invalid params: give 'run' or 'latest', not both");
    if (latest && !session.empty()) throw RpcError(kInvalidParams, "invalid params: give 'session' or 'latest', not both");
    if (cwd.empty() || cwd[0] != '/') throw RpcError(kInvalidParams, "invalid params: 'cwd' must be an absolute directory");

    AttachPlan plan;
    if (run_ref) {
        plan.run = ValueOrThrow(ResolveRun(store, *run_ref, cwd));
    } else if (latest) {
        plan.run = store.MostRecentlyActiveRun();
        if (!plan.run) throw RpcError(kNotFound, "no run has an opencode session yet; start one with: ralph run <task>");
    } else if (!session.empty()) {
        plan.run = store.RunForSession(session);
        if (!plan.run)
            throw RpcError(kNotFound, "no run recorded session " + session +
                                          "; name the run too (`ralph show <run>` lists its sessions), or attach "
                                          "without --session and pick one from opencode's session list (/sessions)");
    }

    if (!plan.run) {
        // The server itself, in the caller's project. `opencode attach` has no way to open its
        // session list directly (only --session and --continue), so say where that list is.
        std::string root = GitRoot(cwd);
        plan.directory = root.empty() ? Real(cwd) : root;
        plan.note = "opening opencode's home screen in " + plan.directory + kSessionListHint;
        return plan;
    }

    const RunRow& run = *plan.run;
    plan.directory = run.work_root();  // its sessions live in its worktree, when it has one
    std::vector<IterationRow> its = store.Iterations(run.id);
    if (!session.empty()) {
        bool found = session == run.session_id;
        for (const IterationRow& it : its) {
            if (it.session_id == session) {
                found = true;
                plan.iteration = it.n;
            }
        }
        if (!found) {
            std::string list = SessionList(its, run);
            throw RpcError(kNotFound, "session " + session + " is not one of run " + std::to_string(run.id) +
                                          "'s sessions; " +
                                          (list.empty() ? "it has none yet" : "its sessions: " + list));
        }
        plan.session = session;
    } else {
        plan.session = run.session_id;
        for (const IterationRow& it : its)
            if (!plan.session.empty() && it.session_id == plan.session) plan.iteration = it.n;
    }

    std::string id = std::to_string(run.id);
    if (run.status == RunStatus::kRunning) {
        if (plan.session.empty())
            plan.note = "run " + id + " has not started its first session yet; opening opencode's home screen in " +
                        run.work_root() + kSessionListHint;
        return plan;
    }
    std::string what = "run " + id + " is " + std::string(Name(run.status)) +
                       (run.reason == RunReason::kNone ? "" : " (" + std::string(Name(run.reason)) + ")");
    std::string showing;
    if (plan.session.empty())
        showing = " and has no opencode session; opening opencode's home screen in " + run.work_root() +
                  kSessionListHint;
    else if (plan.session == run.session_id)
        showing = "; showing its last session";
    else
        showing = "; showing its session " + plan.session + " (iteration " + std::to_string(plan.iteration) + ")";
    plan.note = what + showing + ". Start it again with: " + RunAgainCommand(run, cwd);
    return plan;
}

asio::awaitable<json::value> Target(CallContext& ctx, const json::object& params)
{
    Daemon& d = ctx.daemon;
    AttachPlan plan = PlanAttach(d, params);

    std::string binary_error;
    std::string binary = d.supervisor().OpencodeBinary(binary_error);
    if (binary.empty()) throw RpcError(kServerUnavailable, "cannot attach: " + binary_error);

    // Started on demand and waited for, so that a finished loop's sessions stay inspectable.
    Result<ServerEndpoint> ensured = co_await d.supervisor().Ensure();
    if (!ensured) throw RpcError(kServerUnavailable, "cannot attach: " + ensured.status().message());
    const ServerEndpoint server = *ensured;

    if (!plan.session.empty()) {
        // opencode would only say "Session not found" and exit; say which run it was and what to do.
        std::unique_ptr<OpencodeClient> opencode = d.opencode_clients()(server);
        Result<json::value> session = co_await opencode->GetSession(plan.session, std::chrono::seconds(5));
        if (!session && session.status().http_status() == 404)
            throw RpcError(kNotFound, "opencode no longer has session " + plan.session + " of run " +
                                          std::to_string(plan.run->id) +
                                          " (its data under opencode's storage may have been removed); "
                                          "to pick from the sessions it has in that project: cd " +
                                          plan.directory + " && ralph attach");
    }

    json::value run = nullptr;
    if (plan.run) run = RunJson(*plan.run, d.supervisor().Live());
    co_return Obj("url", server.url(), "session", plan.session.empty() ? json::value(nullptr) : json::value(plan.session),
                  "iteration", plan.iteration ? json::value(plan.iteration) : json::value(nullptr), "directory",
                  plan.directory, "run", run, "note", plan.note.empty() ? json::value(nullptr) : json::value(plan.note),
                  "opencode", binary, "username", server.username, "password", server.password);
}

}  // namespace

const std::vector<RpcMethod>& AttachMethods()
{
    static const std::vector<RpcMethod> methods = {
        {{"attach.target",
          "Where to attach the opencode TUI: a run's latest (or a chosen) session, the most recently active "
          "session, or the server in the caller's project (opencode's home screen there). Starts the server when it is not running and waits; "
          "never changes any run.",
          {{"run", ParamType::StringOrInteger, false, "", "run id or task reference (its running, else latest run)"},
           {"session", ParamType::String, false, "",
            "one of the run's sessions (an iteration's); without `run`, the run that recorded it"},
           {"latest", ParamType::Boolean, false, "false", "the most recently active session of any run, running runs first"},
           {"cwd", ParamType::String, true, "",
            "the caller's working directory (absolute); without a run, its git root (else itself) is the directory"}},
          "`{url, session, iteration, directory, run, note, opencode, username, password}`: `session` and `run` are "
          "null for opencode's home screen in `directory`; `note` (else null) says what opens: a run that is not "
          "running and how to start it again, or where the home screen's session list is; `opencode` is the binary the daemon runs; `password` is the server's, for "
          "`OPENCODE_SERVER_PASSWORD` (never put it on a command line). Errors: -32001 `NOT_FOUND` (no such run, "
          "a session not of that run, naming its sessions, or a session opencode no longer has), -32010 "
          "`SERVER_UNAVAILABLE` saying how to recover"},
         Target},
    };
    return methods;
}

}  // namespace ralph
