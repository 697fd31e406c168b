// RunStore: a run's status while it is active (SPEC §7, §8): the queue, pause, stop requests,
// and the one writer of a terminal status.
#include "daemon/run_states.h"
#include "daemon/store.h"
#include "daemon/store_rows.h"

#include <sqlite3.h>

namespace ralph {

using namespace store_rows;

std::vector<RunRow> RunStore::ActiveRuns()
{
    // Without INDEXED BY, SQLite scans the whole table (every run ever) to find the few active
    // ones; the partial index holds exactly them. Every run.list calls this.
    auto s = db_.Cached(std::string("SELECT ") + kRunColumns + " FROM runs INDEXED BY runs_one_active_per_task WHERE " +
                        kActive + " ORDER BY id");
    std::vector<RunRow> out;
    while (s.Step()) out.push_back(ReadRun(s));
    return out;
}

std::vector<RunRow> RunStore::RunningRuns()
{
    std::vector<RunRow> out = ActiveRuns();
    std::erase_if(out, [](const RunRow& r) { return r.status != RunStatus::kRunning; });
    return out;
}

int64_t RunStore::CountRunning()
{
    auto s = db_.Cached(std::string("SELECT COUNT(*) FROM runs INDEXED BY runs_one_active_per_task WHERE ") + kActive +
                        " AND status = 'running'");
    return s.Step() ? s.Int(0) : 0;
}

std::optional<RunRow> RunStore::NextQueued()
{
    auto s = db_.Cached(std::string("SELECT ") + kRunColumns + " FROM runs INDEXED BY runs_one_active_per_task WHERE " +
                        kActive + " AND status = 'queued' ORDER BY queued_at, id LIMIT 1");
    if (!s.Step()) return std::nullopt;
    return ReadRun(s);
}

bool RunStore::MoveActiveRun(int64_t id, RunStatus from, RunStatus to, int64_t at)
{
    if (!IsActive(from) || !IsActive(to))
        throw StoreError("MoveActiveRun: " + std::string(Name(from)) + " -> " + std::string(Name(to)));
    sqlite::Transaction tx(db_);
    // Running again: the time since paused_at was not running. Queued or paused: since when.
    auto s = db_.Cached(
        "UPDATE runs SET status = ?1, "
        "paused_ms = CASE WHEN ?1 = 'running' THEN paused_ms + MAX(0, ?2 - COALESCE(paused_at, ?2)) ELSE paused_ms END, "
        "paused_at = CASE WHEN ?1 = 'running' THEN NULL ELSE COALESCE(paused_at, ?2) END, "
        "queued_at = CASE WHEN ?1 = 'queued' THEN ?2 ELSE queued_at END, "
        "pause_requested = '' WHERE id = ?3 AND status = ?4");
    s.Bind(Name(to)).Bind(at).Bind(id).Bind(Name(from));
    s.Step();
    bool changed = sqlite3_changes(db_.handle()) == 1;
    tx.Commit();
    return changed;
}

bool RunStore::RequestOfRunning(const char* column, int64_t id, bool now)
{
    sqlite::Transaction tx(db_);
    // Never from "now" back to "after_iteration": asked at once stays at once.
    auto s = db_.Cached(std::string("UPDATE runs SET ") + column + " = ? WHERE id = ? AND status = 'running' AND " + column +
                        " <> 'now'");
    s.Bind(std::string(now ? "now" : "after_iteration")).Bind(id);
    s.Step();
    bool changed = sqlite3_changes(db_.handle()) == 1;
    tx.Commit();
    if (changed) return true;
    auto run = GetRun(id);
    return run && run->status == RunStatus::kRunning;  // asked at once already
}

bool RunStore::RequestPause(int64_t id, bool now) { return RequestOfRunning("pause_requested", id, now); }

bool RunStore::CancelPause(int64_t id)
{
    sqlite::Transaction tx(db_);
    auto s = db_.Cached("UPDATE runs SET pause_requested = '' WHERE id = ? AND status = 'running' AND pause_requested <> ''");
    s.Bind(id);
    s.Step();
    bool changed = sqlite3_changes(db_.handle()) == 1;
    tx.Commit();
    return changed;
}

bool RunStore::FinishRun(int64_t id, RunStatus status, RunReason reason, int64_t at, const std::string& reason_detail)
{
    if (!IsTerminal(status)) throw StoreError("FinishRun: '" + std::string(Name(status)) + "' is not a terminal status");
    sqlite::Transaction tx(db_);
    auto s = db_.Cached(std::string("UPDATE runs SET status = ?1, reason = ?2, ended_at = ?3, reason_detail = ?4, "
                                    "paused_ms = paused_ms + COALESCE(?3 - paused_at, 0), paused_at = NULL, "
                                    "pause_requested = '' WHERE id = ?5 AND ") +
                        kActive);
    s.Bind(Name(status)).Bind(Name(reason)).Bind(at);
    if (reason_detail.empty()) s.BindNull();
    else s.Bind(reason_detail);
    s.Bind(id);
    s.Step();
    bool changed = sqlite3_changes(db_.handle()) == 1;
    tx.Commit();
    return changed;
}

bool RunStore::RequestStop(int64_t id, bool now) { return RequestOfRunning("stop_requested", id, now); }

std::optional<RunRow> RunStore::ActiveRunForTask(const std::string& task_dir)
{
    auto s = db_.Cached(std::string("SELECT ") + kRunColumns + " FROM runs WHERE task_dir = ? AND " + kActive);
    s.Bind(task_dir);
    if (!s.Step()) return std::nullopt;
    return ReadRun(s);
}

void RunStore::SetWaitingUntil(int64_t id, int64_t until)
{
    auto s = db_.Cached("UPDATE runs SET waiting_until = ? WHERE id = ? AND status = 'running'");
    s.BindNullableInt(until).Bind(id);
    s.Step();
}

RunStore::RateLimited RunStore::RateLimitedIterations(int64_t run_id)
{
    RateLimited r;
    auto s = db_.Cached("SELECT outcome, started_at FROM iterations WHERE run_id = ? AND outcome <> '' ORDER BY n DESC");
    s.Bind(run_id);
    bool in_streak = true;
    while (s.Step()) {
        const bool limited = s.Text(0) == Name(OutcomeName::kRateLimited);
        if (limited) ++r.total;
        if (in_streak && limited) {
            ++r.streak;
            r.since = s.Int(1);
        } else {
            in_streak = false;
        }
    }
    return r;
}
}  // namespace ralph
