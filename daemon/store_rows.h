// The runs and iterations tables as RunRow and IterationRow: the columns read and how, shared by
// the store's source files (store.cpp, store_active.cpp). Private to RunStore.
#pragma once

#include "daemon/run_states.h"
#include "daemon/store.h"

#include <cassert>
#include <optional>

namespace ralph::store_rows {

/// A status, reason or outcome column read as its enum. A name the tables do not know cannot be
/// read: the schema's CHECKs admit only the tables' names to status and outcome, and reason (which
/// has no CHECK) is written only from RunReason. Should a hand-edited database hold one anyway,
/// this asserts in debug builds and otherwise falls back to `fallback`, a state the daemon never
/// acts on: status failed, reason none, outcome error.
template <typename E>
E NamedOr(std::optional<E> parsed, E fallback)
{
    assert(parsed && "a name the run_states.h table does not know");
    return parsed.value_or(fallback);
}

inline const char* const kRunColumns =
    "id, task_name, task_dir, project_root, status, reason, iteration, max_iterations, model, agent, promise, "
    "iteration_timeout_ms, max_consecutive_failures, consecutive_failures, stop_requested, started_at, "
    "COALESCE(ended_at, 0), session_id, COALESCE(last_port, 0), tokens_in, tokens_out, cost, legacy_agent, "
    "legacy_session_type, legacy_current_story, legacy_workspace_dir, COALESCE(base, ''), max_idle_iterations, COALESCE(worktree, ''), COALESCE(branch, ''), worktree_mode, "
    "COALESCE(reason_detail, ''), max_cost, max_tokens, max_time_ms, COALESCE(verify, ''), tokens_reasoning, "
    "COALESCE(stories_passed, -1), COALESCE(stories_total, -1), verify_timeout_ms, COALESCE(queued_at, 0), "
    "pause_requested, COALESCE(paused_at, 0), paused_ms, COALESCE(waiting_until, 0)";

/// Matches the partial index runs_one_active_per_task, which holds exactly the active runs.
inline const char* const kActive = "status IN ('queued', 'running', 'paused')";

template <typename S>
RunRow ReadRun(S& s)
{
    RunRow r;
    r.id = s.Int(0);
    r.task_name = s.Text(1);
    r.task_dir = s.Text(2);
    r.project_root = s.Text(3);
    r.status = NamedOr(ParseRunStatus(s.Text(4)), RunStatus::kFailed);
    r.reason = NamedOr(ParseRunReason(s.Text(5)), RunReason::kNone);
    r.iteration = static_cast<int>(s.Int(6));
    r.max_iterations = static_cast<int>(s.Int(7));
    r.model = s.Text(8);
    r.agent = s.Text(9);
    r.promise = s.Text(10);
    r.iteration_timeout_ms = s.Int(11);
    r.max_consecutive_failures = static_cast<int>(s.Int(12));
    r.consecutive_failures = static_cast<int>(s.Int(13));
    r.stop_requested = s.Text(14);
    r.started_at = s.Int(15);
    r.ended_at = s.Int(16);
    r.session_id = s.Text(17);
    r.last_port = static_cast<int>(s.Int(18));
    r.tokens_in = s.Int(19);
    r.tokens_out = s.Int(20);
    r.cost = s.Real(21);
    r.legacy.agent = s.Text(22);
    r.legacy.session_type = s.Text(23);
    r.legacy.current_story = s.Text(24);
    r.legacy.workspace_dir = s.Text(25);
    r.base = s.Text(26);
    r.max_idle_iterations = static_cast<int>(s.Int(27));
    r.worktree = s.Text(28);
    r.branch = s.Text(29);
    r.worktree_mode = s.Text(30);
    r.reason_detail = s.Text(31);
    r.budget.max_cost = s.Real(32);
    r.budget.max_tokens = s.Int(33);
    r.budget.max_time_ms = s.Int(34);
    r.verify = s.Text(35);
    r.tokens_reasoning = s.Int(36);
    r.stories_passed = static_cast<int>(s.Int(37));
    r.stories_total = static_cast<int>(s.Int(38));
    r.verify_timeout_ms = s.Int(39);
    r.queued_at = s.Int(40);
    r.pause_requested = s.Text(41);
    r.paused_at = s.Int(42);
    r.paused_ms = s.Int(43);
    r.waiting_until = s.Int(44);
    return r;
}

inline const char* const kIterationColumns =
    "run_id, n, session_id, outcome, started_at, COALESCE(ended_at, 0), error, promise_seen, tokens_in, "
    "tokens_out, cost, COALESCE(port, 0), COALESCE(checkpoint, ''), COALESCE(files_changed, 0), "
    "COALESCE(insertions, 0), COALESCE(deletions, 0), COALESCE(commits, 0), tokens_reasoning, COALESCE(verify, ''), "
    "verify_exit";

template <typename S>
IterationRow ReadIteration(S& s)
{
    IterationRow it;
    it.run_id = s.Int(0);
    it.n = static_cast<int>(s.Int(1));
    it.session_id = s.Text(2);
    it.outcome = NamedOr(ParseOutcomeName(s.Text(3)), OutcomeName::kError);
    it.started_at = s.Int(4);
    it.ended_at = s.Int(5);
    it.error = s.Text(6);
    it.promise_seen = s.Int(7) != 0;
    it.tokens_in = s.Int(8);
    it.tokens_out = s.Int(9);
    it.cost = s.Real(10);
    it.port = static_cast<int>(s.Int(11));
    it.checkpoint = s.Text(12);
    it.files_changed = static_cast<int>(s.Int(13));
    it.insertions = static_cast<int>(s.Int(14));
    it.deletions = static_cast<int>(s.Int(15));
    it.commits = static_cast<int>(s.Int(16));
    it.tokens_reasoning = s.Int(17);
    it.verify = s.Text(18);
    if (!s.IsNull(19)) it.verify_exit = static_cast<int>(s.Int(19));
    return it;
}

}  // namespace ralph::store_rows
