// The run store migrates step by step, refuses a newer schema, and never lets a run leave a
// terminal status.
#include "daemon/run_states.h"
#include "daemon/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <sys/stat.h>

namespace ralph {
namespace {

class UnitStore : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/ralph-store-XXXXXX";
        dir_ = mkdtemp(tmpl);
        path_ = dir_ + "/ralph.db";
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    RunRow NewRun(const std::string& task_dir)
    {
        RunRow r;
        r.task_name = "t";
        r.task_dir = task_dir;
        r.project_root = "/p";
        r.max_iterations = 5;
        r.promise = "COMPLETE";
        r.iteration_timeout_ms = 1000;
        r.started_at = NowMillis();
        return r;
    }
    void RawExec(const std::string& sql)
    {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
        char* err = nullptr;
        int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
        sqlite3_free(err);
        sqlite3_close(db);
        ASSERT_EQ(rc, SQLITE_OK) << sql;
    }
    std::string dir_, path_;
};

TEST_F(UnitStore, MigratesFromEmptyToCurrent)
{
    RunStore store(path_);
    EXPECT_EQ(store.SchemaVersion(), RunStore::kSchemaVersion);
    struct stat st {};
    ASSERT_EQ(stat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(UnitStore, MigratesFromEveryEarlierVersion)
{
    for (int v = 0; v <= RunStore::kSchemaVersion; ++v) {
        std::filesystem::remove(path_);
        RunStore::CreateAtVersionForTest(path_, v);
        if (v >= 1) {
            RawExec("INSERT INTO runs (task_name, task_dir, project_root, status, max_iterations, promise, "
                    "iteration_timeout_ms, max_consecutive_failures, started_at) "
                    "VALUES ('t', '/p/tasks/t', '/p', 'completed', 3, 'COMPLETE', 1000, 3, 1)");
        }
        RunStore store(path_);
        EXPECT_EQ(store.SchemaVersion(), RunStore::kSchemaVersion) << "from version " << v;
        if (v >= 1) {
            auto run = store.GetRun(1);
            ASSERT_TRUE(run) << "from version " << v;
            EXPECT_EQ(run->status, RunStatus::kCompleted);
        }
        // Version 2 added runs.legacy_id: ralph's own runs have none, and an import finds the column.
        ImportedRun in;
        in.run.task_name = "old";
        in.run.task_dir = "/p/tasks/old";
        in.run.project_root = "/p";
        in.run.status = RunStatus::kStopped;
        in.run.started_at = 5;
        in.legacy_id = "legacy:x";
        auto imported = store.ImportFinishedRuns({in});
        ASSERT_EQ(imported.size(), 1u) << "from version " << v;
        EXPECT_TRUE(imported[0].inserted) << "from version " << v;
    }
}

TEST_F(UnitStore, RefusesANewerSchema)
{
    { RunStore store(path_); }
    RawExec("PRAGMA user_version = 99");
    try {
        RunStore store(path_);
        FAIL() << "opened a newer schema";
    } catch (const StoreError& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("99"), std::string::npos) << msg;
        EXPECT_NE(msg.find("upgrade ralph"), std::string::npos) << msg;
    }
}

TEST_F(UnitStore, OneRunningRunPerTask)
{
    RunStore store(path_);
    auto a = store.InsertRun(NewRun("/p/tasks/a"));
    ASSERT_TRUE(a);
    EXPECT_FALSE(store.InsertRun(NewRun("/p/tasks/a")));
    auto b = store.InsertRun(NewRun("/p/tasks/b"));
    ASSERT_TRUE(b);
    EXPECT_GT(*b, *a);
    EXPECT_TRUE(store.FinishRun(*a, RunStatus::kCompleted, RunReason::kPromise, NowMillis()));
    auto c = store.InsertRun(NewRun("/p/tasks/a"));
    ASSERT_TRUE(c);
    EXPECT_GT(*c, *b);  // ids increase and are never reused
}

TEST_F(UnitStore, EveryTransitionOutOfATerminalStatusIsRefused)
{
    RunStore store(path_);
    const auto terminals = {RunStatus::kCompleted, RunStatus::kStopped, RunStatus::kFailed};
    for (RunStatus terminal : terminals) {
        auto id = store.InsertRun(NewRun("/p/tasks/" + std::string(Name(terminal))));
        ASSERT_TRUE(id);
        ASSERT_TRUE(store.FinishRun(*id, terminal, RunReason::kBudget, 1000));
        auto before = store.GetRun(*id);
        for (RunStatus next : terminals) {
            EXPECT_FALSE(store.FinishRun(*id, next, RunReason::kUser, 2000)) << terminal << " -> " << next;
        }
        EXPECT_FALSE(store.RequestStop(*id, true));
        EXPECT_THROW(store.BeginIteration(*id, 1, "ses_x", 1, 3000), StoreError);
        // The schema refuses it too, whatever SQL tries.
        EXPECT_THROW(store.ExecForTest("UPDATE runs SET status = 'running' WHERE id = " + std::to_string(*id)),
                     StoreError);
        EXPECT_THROW(store.ExecForTest("UPDATE runs SET reason = 'other' WHERE id = " + std::to_string(*id)),
                     StoreError);
        for (RunStatus next : terminals) {
            EXPECT_THROW(store.ExecForTest("UPDATE runs SET status = '" + std::string(Name(next)) + "' WHERE id = " +
                                           std::to_string(*id)),
                         StoreError)
                << terminal << " -> " << next << " by SQL";
        }
        // Nor any other field: what attach, status or a health check might have been tempted to touch.
        for (std::string set : {"session_id = 'ses_other'", "last_port = 1", "ended_at = 1", "iteration = 9",
                                "stop_requested = 'now'", "tokens_in = tokens_in + 1"}) {
            EXPECT_THROW(store.ExecForTest("UPDATE runs SET " + set + " WHERE id = " + std::to_string(*id)), StoreError)
                << set;
        }
        // An iteration finishing late (e.g. reported after the run ended) adds nothing to the run.
        IterationRow late;
        late.run_id = *id;
        late.n = 1;
        late.outcome = OutcomeName::kContinue;
        late.tokens_in = 100;
        store.FinishIteration(late);
        EXPECT_THROW(store.ExecForTest("DELETE FROM runs WHERE id = " + std::to_string(*id)), StoreError);
        auto after = store.GetRun(*id);
        EXPECT_EQ(after->status, terminal);
        EXPECT_EQ(after->reason, RunReason::kBudget);
        EXPECT_EQ(after->ended_at, before->ended_at);
        EXPECT_EQ(after->tokens_in, before->tokens_in);
        EXPECT_EQ(after->session_id, before->session_id);
    }
    EXPECT_THROW(store.FinishRun(1, RunStatus::kRunning, RunReason::kNone, 0), StoreError);
}

TEST_F(UnitStore, ImportedRunsAreFinalFromTheStartAndImportedOnce)
{
    RunStore store(path_);
    ImportedRun in;
    in.run = NewRun("/p/tasks/old");
    in.run.status = RunStatus::kCompleted;
    in.run.ended_at = in.run.started_at + 10;
    in.run.session_id = "ses_old";
    in.run.last_port = 14096;
    in.run.iteration = 4;
    in.legacy_id = "legacy:/p/tasks/old@1";
    IterationRow it;
    it.n = 4;
    it.session_id = "ses_old";
    it.outcome = OutcomeName::kComplete;
    it.started_at = in.run.ended_at;
    it.ended_at = in.run.ended_at;
    in.iterations.push_back(it);
    in.note = "imported";
    auto first = store.ImportFinishedRuns({in});
    ASSERT_EQ(first.size(), 1u);
    EXPECT_TRUE(first[0].inserted);
    auto run = store.GetRun(first[0].run_id);
    ASSERT_TRUE(run);
    EXPECT_EQ(run->status, RunStatus::kCompleted);
    EXPECT_EQ(run->session_id, "ses_old");
    EXPECT_EQ(store.Iterations(run->id).size(), 1u);
    EXPECT_EQ(store.Events(run->id, 0, 10).size(), 1u);
    // Final like any other terminal run.
    EXPECT_FALSE(store.FinishRun(run->id, RunStatus::kFailed, RunReason::kUser, 1));
    EXPECT_FALSE(store.RequestStop(run->id, false));
    EXPECT_THROW(store.ExecForTest("UPDATE runs SET status = 'failed' WHERE id = " + std::to_string(run->id)),
                 StoreError);
    EXPECT_THROW(store.ExecForTest("UPDATE runs SET legacy_id = NULL WHERE id = " + std::to_string(run->id)),
                 StoreError);
    // The same legacy entry again: nothing written, the earlier run named.
    auto again = store.ImportFinishedRuns({in});
    ASSERT_EQ(again.size(), 1u);
    EXPECT_FALSE(again[0].inserted);
    EXPECT_EQ(again[0].run_id, run->id);
    EXPECT_EQ(store.ListRuns("", 0).size(), 1u);
    EXPECT_EQ(store.Iterations(run->id).size(), 1u);
    // A running status is refused, and nothing of the batch is written.
    ImportedRun other = in;
    other.legacy_id = "legacy:/p/tasks/other@2";
    ImportedRun running = in;
    running.legacy_id = "legacy:/p/tasks/run@3";
    running.run.status = RunStatus::kRunning;
    EXPECT_THROW(store.ImportFinishedRuns({other, running}), StoreError);
    EXPECT_EQ(store.ListRuns("", 0).size(), 1u);
}

TEST_F(UnitStore, IterationsAddUpAndTrackFailureStreaks)
{
    RunStore store(path_);
    auto id = *store.InsertRun(NewRun("/p/tasks/a"));
    store.BeginIteration(id, 1, "ses_1", 14096, 100);
    EXPECT_EQ(store.UnfinishedIteration(id)->n, 1);
    IterationRow it;
    it.run_id = id;
    it.n = 1;
    it.outcome = OutcomeName::kError;
    it.ended_at = 200;
    it.tokens_in = 10;
    it.tokens_out = 5;
    it.cost = 0.5;
    store.FinishIteration(it);
    EXPECT_FALSE(store.UnfinishedIteration(id));
    auto run = store.GetRun(id);
    EXPECT_EQ(run->iteration, 1);
    EXPECT_EQ(run->session_id, "ses_1");
    EXPECT_EQ(run->last_port, 14096);
    EXPECT_EQ(run->consecutive_failures, 1);
    EXPECT_EQ(run->tokens_in, 10);

    store.BeginIteration(id, 2, "ses_2", 14096, 300);
    it.n = 2;
    it.outcome = OutcomeName::kContinue;
    store.FinishIteration(it);
    run = store.GetRun(id);
    EXPECT_EQ(run->consecutive_failures, 0);
    EXPECT_EQ(run->tokens_in, 20);
    EXPECT_DOUBLE_EQ(run->cost, 1.0);
    // Finishing an iteration twice adds nothing.
    store.FinishIteration(it);
    EXPECT_EQ(store.GetRun(id)->tokens_in, 20);
    auto its = store.Iterations(id);
    ASSERT_EQ(its.size(), 2u);
    EXPECT_EQ(its[0].outcome, OutcomeName::kError);
    EXPECT_EQ(its[1].session_id, "ses_2");
}

TEST_F(UnitStore, EventsAndServerRecord)
{
    RunStore store(path_);
    auto id = *store.InsertRun(NewRun("/p/tasks/a"));
    auto e1 = store.AppendEvent(id, 1, "text", R"({"text":"hi"})", 1);
    auto e2 = store.AppendEvent(id, 1, "tool", R"({"tool":"write"})", 2);
    auto all = store.Events(id, 0, 100);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].id, e1);
    auto after = store.Events(id, e1, 100);
    ASSERT_EQ(after.size(), 1u);
    EXPECT_EQ(after[0].id, e2);

    EXPECT_FALSE(store.GetManagedServer());
    store.SetManagedServer(ManagedServerRecord{123, 456, 14096, 789});
    auto rec = store.GetManagedServer();
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->pid, 123);
    EXPECT_EQ(rec->start_time, 456u);
    store.SetManagedServer(std::nullopt);
    EXPECT_FALSE(store.GetManagedServer());
}

// The rows carry enums and SQLite their names: every reason and outcome is written and read back.
TEST_F(UnitStore, EveryReasonAndOutcomeIsStoredAndReadBack)
{
    RunStore store(path_);
    for (int i = 1; i <= static_cast<int>(RunReason::kProviderUnavailable); ++i) {
        const auto reason = static_cast<RunReason>(i);
        const int64_t id = *store.InsertRun(NewRun("/p/tasks/r" + std::to_string(i)));
        ASSERT_TRUE(store.FinishRun(id, StatusOf(reason), reason, 1)) << reason;
        EXPECT_EQ(store.GetRun(id)->status, StatusOf(reason));
        EXPECT_EQ(store.GetRun(id)->reason, reason);
    }
    const int64_t id = *store.InsertRun(NewRun("/p/tasks/o"));
    for (int n = 1; n <= static_cast<int>(OutcomeName::kRateLimited); ++n) {
        store.BeginIteration(id, n, "ses_" + std::to_string(n), 1, n);
        EXPECT_EQ(store.Iterations(id).back().outcome, OutcomeName::kNone);
        IterationRow it;
        it.run_id = id;
        it.n = n;
        it.outcome = static_cast<OutcomeName>(n);
        store.FinishIteration(it);
        EXPECT_EQ(store.Iterations(id).back().outcome, it.outcome);
    }
}

TEST_F(UnitStore, ListsRunningRunsEvenPastTheLimit)
{
    RunStore store(path_);
    auto running = *store.InsertRun(NewRun("/p/tasks/old"));
    for (int i = 0; i < 5; ++i) {
        auto id = *store.InsertRun(NewRun("/p/tasks/t" + std::to_string(i)));
        store.FinishRun(id, RunStatus::kStopped, RunReason::kUser, 1);
    }
    auto list = store.ListRuns("", 3);
    ASSERT_EQ(list.size(), 4u);
    EXPECT_EQ(list.back().id, running);
    EXPECT_EQ(store.ListRuns("", 0).size(), 6u);
}

}  // namespace
}  // namespace ralph

namespace ralph {
namespace {

// A released migration step never changes: step 0's CHECK lists are the ones databases made by
// earlier releases have, generated from the string tables.
TEST(UnitStoreSchema, ReleasedStepsKeepTheirChecks)
{
    std::string step0 = SchemaStep(0);
    EXPECT_NE(step0.find("CHECK (status IN ('running', 'completed', 'stopped', 'failed'))"), std::string::npos);
    EXPECT_NE(step0.find("CHECK (outcome IN ('', 'continue', 'complete', 'error', 'timeout', 'aborted', 'interrupted'))"),
              std::string::npos);
    EXPECT_EQ(step0.find('@'), std::string::npos) << "a placeholder left in the schema";
    EXPECT_THROW(SchemaStep(kSchemaVersion), std::out_of_range);
}

TEST(UnitRunStates, EveryNameParsesBackToItsValue)
{
    for (auto s : {RunStatus::kRunning, RunStatus::kCompleted, RunStatus::kStopped, RunStatus::kFailed})
        EXPECT_EQ(ParseRunStatus(Name(s)), s);
    for (int i = 0; i <= static_cast<int>(RunReason::kNoProgress); ++i) {
        auto r = static_cast<RunReason>(i);
        EXPECT_EQ(ParseRunReason(Name(r)), r);
        EXPECT_EQ(IsTerminal(StatusOf(r)), r != RunReason::kNone) << Name(r);
    }
    for (int i = 0; i <= static_cast<int>(OutcomeName::kInterrupted); ++i) {
        auto o = static_cast<OutcomeName>(i);
        EXPECT_EQ(ParseOutcomeName(Name(o)), o);
    }
    EXPECT_FALSE(ParseRunStatus("runnin"));
    EXPECT_EQ(StatusOf(RunReason::kPromise), RunStatus::kCompleted);
    EXPECT_EQ(StatusOf(RunReason::kUser), RunStatus::kStopped);
    EXPECT_EQ(StatusOf(RunReason::kTaskInvalid), RunStatus::kFailed);
    EXPECT_EQ(StatusOf(RunReason::kNoProgress), RunStatus::kStopped);
    EXPECT_EQ(StatusOf(RunReason::kBudget), RunStatus::kStopped);
    EXPECT_EQ(StatusOf(RunReason::kProviderUnavailable), RunStatus::kFailed);
    EXPECT_FALSE(IsTerminal(RunStatus::kQueued));
    EXPECT_FALSE(IsTerminal(RunStatus::kPaused));
    // Step 5 (to version 6) made the tables again with the new names allowed.
    EXPECT_NE(SchemaStep(5).find("CHECK (status IN ('running', 'completed', 'stopped', 'failed', 'queued', 'paused'))"),
              std::string::npos);
    EXPECT_NE(SchemaStep(5).find("'interrupted', 'rate_limited'))"), std::string::npos);
    EXPECT_EQ(SchemaStep(4).find("queued"), std::string::npos);
}

// Step 5 makes the runs and iterations tables again: an active run, its iterations and events, and
// the guards (one active run per task, a terminal run frozen) all survive it.
TEST_F(UnitStore, RebuildingTheTablesKeepsRowsAndGuards)
{
    RunStore::CreateAtVersionForTest(path_, 5);
    RawExec("INSERT INTO runs (task_name, task_dir, project_root, status, max_iterations, promise, "
            "iteration_timeout_ms, max_consecutive_failures, started_at, max_cost, verify) "
            "VALUES ('t', '/p/tasks/t', '/p', 'running', 3, 'COMPLETE', 1000, 3, 1, 0.5, 'make test');"
            "INSERT INTO iterations (run_id, n, session_id, outcome, started_at, verify, verify_exit) "
            "VALUES (1, 1, 'ses_1', 'continue', 2, 'failed', 2);"
            "INSERT INTO run_events (run_id, at, iteration, kind, data) VALUES (1, 3, 1, 'note', '{}');");
    RunStore store(path_);
    auto run = store.GetRun(1);
    ASSERT_TRUE(run);
    EXPECT_EQ(run->status, RunStatus::kRunning);
    EXPECT_EQ(run->budget.max_cost, 0.5);
    EXPECT_EQ(run->verify, "make test");
    auto its = store.Iterations(1);
    ASSERT_EQ(its.size(), 1u);
    EXPECT_EQ(its[0].verify, "failed");
    EXPECT_EQ(its[0].verify_exit, 2);
    EXPECT_EQ(store.Events(1, 0, 10).size(), 1u);
    EXPECT_FALSE(store.InsertRun(NewRun("/p/tasks/t"), true));  // still one active run per task
    ASSERT_TRUE(store.FinishRun(1, RunStatus::kStopped, RunReason::kUser, 10));
    EXPECT_THROW(store.ExecForTest("UPDATE runs SET status = 'running' WHERE id = 1"), std::exception);
    EXPECT_THROW(store.ExecForTest("INSERT INTO iterations (run_id, n, started_at) VALUES (99, 1, 1)"), std::exception)
        << "the iterations' reference to runs is checked";
}

// Queued and paused runs are active; the time they spend so does not count as running.
TEST_F(UnitStore, QueueAndPauseMoveBetweenActiveStatusesAndKeepTheTimeNotRunning)
{
    RunStore store(path_);
    RunRow row = NewRun("/p/tasks/a");
    row.started_at = 1000;
    auto a = store.InsertRun(row, true);
    ASSERT_TRUE(a);
    EXPECT_EQ(store.GetRun(*a)->status, RunStatus::kQueued);
    EXPECT_EQ(store.GetRun(*a)->queued_at, 1000);
    EXPECT_EQ(store.CountRunning(), 0);
    ASSERT_TRUE(store.NextQueued());
    EXPECT_FALSE(store.MoveActiveRun(*a, RunStatus::kRunning, RunStatus::kPaused, 1500));  // it is not running
    ASSERT_TRUE(store.MoveActiveRun(*a, RunStatus::kQueued, RunStatus::kRunning, 4000));
    EXPECT_EQ(store.GetRun(*a)->paused_ms, 3000);
    EXPECT_EQ(store.GetRun(*a)->paused_at, 0);
    EXPECT_EQ(store.CountRunning(), 1);
    EXPECT_FALSE(store.NextQueued());
    ASSERT_TRUE(store.RequestPause(*a, false));
    EXPECT_EQ(store.GetRun(*a)->pause_requested, "after_iteration");
    ASSERT_TRUE(store.MoveActiveRun(*a, RunStatus::kRunning, RunStatus::kPaused, 5000));
    EXPECT_EQ(store.GetRun(*a)->pause_requested, "");
    EXPECT_EQ(store.ActiveRunForTask("/p/tasks/a")->status, RunStatus::kPaused);
    EXPECT_FALSE(store.InsertRun(NewRun("/p/tasks/a")));  // a paused run holds its task
    EXPECT_FALSE(store.RequestStop(*a, false));           // no loop to ask: it is ended at once
    ASSERT_TRUE(store.FinishRun(*a, RunStatus::kStopped, RunReason::kUser, 7000));
    EXPECT_EQ(store.GetRun(*a)->paused_ms, 5000);  // 3 s queued, 2 s paused
    EXPECT_FALSE(store.MoveActiveRun(*a, RunStatus::kPaused, RunStatus::kRunning, 8000));
    EXPECT_TRUE(store.ActiveRuns().empty());
}

// Runs without a legacy_id (the benchmark's generated history) are inserted with their log.
TEST(UnitStoreSchema, FinishedRunsWithoutLegacyIdKeepTheirEvents)
{
    char tmpl[] = "/tmp/ralph-store-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    {
        RunStore store(dir + "/ralph.db");
        std::vector<ImportedRun> batch(2);
        for (ImportedRun& in : batch) {
            in.run.task_name = "t";
            in.run.task_dir = "/p/tasks/t";
            in.run.project_root = "/p";
            in.run.status = RunStatus::kStopped;
            in.run.reason = RunReason::kMaxIterations;
            in.run.promise = "COMPLETE";
            in.run.started_at = 1;
            in.run.ended_at = 2;
            in.events.push_back(RunEvent{0, 0, 1, 0, "run.start", "{}"});
            in.events.push_back(RunEvent{0, 0, 2, 1, "run.end", "{\"status\":\"stopped\"}"});
        }
        auto out = store.ImportFinishedRuns(batch);
        ASSERT_EQ(out.size(), 2u);
        EXPECT_TRUE(out[0].inserted);
        EXPECT_TRUE(out[1].inserted);
        EXPECT_NE(out[0].run_id, out[1].run_id);
        auto events = store.Events(out[1].run_id, 0, 10);
        ASSERT_EQ(events.size(), 2u);
        EXPECT_EQ(events[1].kind, "run.end");
        EXPECT_EQ(events[1].iteration, 1);
        EXPECT_EQ(store.CountRuns(""), 2);
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ralph
