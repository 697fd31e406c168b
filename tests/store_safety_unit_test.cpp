// The store's safety nets on their own: the database put back at its path after it was deleted
// under an open connection (ids go on), and a run's log kept in memory while the database cannot
// be written (a lock held elsewhere, a full disk), written in order once it can, or counted.
#include "daemon/store.h"
#include "tests/environment_util.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <sys/stat.h>

namespace ralph {
namespace {

using test::FillDisk;
using test::IntegrityCheck;
using test::SqliteHolder;
using test::TmpfsMount;

class UnitStoreSafety : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/ralph-store-safety-XXXXXX";
        root_ = mkdtemp(tmpl);
        dir_ = root_ + "/state";
        std::filesystem::create_directories(dir_);
        path_ = dir_ + "/ralph.db";
    }
    void TearDown() override { std::filesystem::remove_all(root_); }

    static RunRow NewRun(const std::string& task_dir)
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
    /// What a second process opening path_ now sees: the ids of its runs.
    std::vector<int64_t> RunIdsSeenByAnotherConnection()
    {
        std::vector<int64_t> ids;
        sqlite3* db = nullptr;
        if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
            sqlite3_stmt* s = nullptr;
            if (sqlite3_prepare_v2(db, "SELECT id FROM runs ORDER BY id", -1, &s, nullptr) == SQLITE_OK)
                while (sqlite3_step(s) == SQLITE_ROW) ids.push_back(sqlite3_column_int64(s, 0));
            sqlite3_finalize(s);
        }
        sqlite3_close(db);
        return ids;
    }
    void RemoveDatabaseFiles()
    {
        for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
        ASSERT_FALSE(std::filesystem::exists(path_));
    }

    std::string root_, dir_, path_;
};

TEST_F(UnitStoreSafety, NothingDeletedMeansNothingDone)
{
    RunStore store(path_);
    struct stat before {};
    ASSERT_EQ(stat(path_.c_str(), &before), 0);
    EXPECT_FALSE(store.RestoreIfDeleted());
    struct stat after {};
    ASSERT_EQ(stat(path_.c_str(), &after), 0);
    EXPECT_EQ(before.st_ino, after.st_ino);
}

TEST_F(UnitStoreSafety, DeletedDatabaseIsPutBackWithEveryRunAndIdsAreNeverReused)
{
    auto store = std::make_unique<RunStore>(path_);
    int64_t first = *store->InsertRun(NewRun("/p/tasks/a"));
    ASSERT_TRUE(store->FinishRun(first, RunStatus::kCompleted, RunReason::kPromise, NowMillis()));
    int64_t second = *store->InsertRun(NewRun("/p/tasks/b"));
    store->AppendEvent(second, 1, "text", R"({"text":"before"})", 1);
    RemoveDatabaseFiles();

    ASSERT_TRUE(store->RestoreIfDeleted());
    ASSERT_TRUE(std::filesystem::exists(path_));
    struct stat st {};
    ASSERT_EQ(stat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(RunIdsSeenByAnotherConnection(), (std::vector<int64_t>{first, second}));
    EXPECT_FALSE(std::filesystem::exists(path_ + ".restoring"));

    // Writes after the restore land in the file at the path, and ids go on.
    int64_t third = *store->InsertRun(NewRun("/p/tasks/c"));
    EXPECT_EQ(third, second + 1);
    store->AppendEvent(second, 1, "text", R"({"text":"after"})", 2);
    EXPECT_EQ(RunIdsSeenByAnotherConnection(), (std::vector<int64_t>{first, second, third}));
    EXPECT_FALSE(store->RestoreIfDeleted());
    store.reset();

    EXPECT_EQ(IntegrityCheck(path_), "ok");
    RunStore reopened(path_);
    EXPECT_EQ(reopened.GetRun(first)->status, RunStatus::kCompleted);
    EXPECT_EQ(reopened.Events(second, 0, 10).size(), 2u);
    EXPECT_EQ(*reopened.InsertRun(NewRun("/p/tasks/d")), third + 1);
}

TEST_F(UnitStoreSafety, DeletedWalAloneIsPutBackSoThatOtherReadersSeeTheLatestWrites)
{
    RunStore store(path_);
    int64_t id = *store.InsertRun(NewRun("/p/tasks/a"));  // in the -wal only, not yet checkpointed
    std::filesystem::remove(path_ + "-wal");
    ASSERT_TRUE(store.RestoreIfDeleted());
    EXPECT_EQ(RunIdsSeenByAnotherConnection(), (std::vector<int64_t>{id}));
}

TEST_F(UnitStoreSafety, DeletedStateDirectoryIsMadeAgain)
{
    RunStore store(path_);
    int64_t id = *store.InsertRun(NewRun("/p/tasks/a"));
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(store.RestoreIfDeleted());
    struct stat st {};
    ASSERT_EQ(stat(dir_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(RunIdsSeenByAnotherConnection(), (std::vector<int64_t>{id}));
}

/// The data texts of a run's events, in log order.
std::vector<std::string> EventTexts(RunStore& store, int64_t run)
{
    std::vector<std::string> out;
    for (const RunEvent& e : store.Events(run, 0, 100000)) out.push_back(e.data);
    return out;
}

std::string Text(int i) { return R"({"text":"event )" + std::to_string(i) + R"("})"; }

TEST_F(UnitStoreSafety, EventsAreKeptWhileAnotherProcessHoldsTheLockAndWrittenInOrderAfterwards)
{
    RunStore store(path_);
    int64_t id = *store.InsertRun(NewRun("/p/tasks/a"));
    EXPECT_GT(store.AppendEvent(id, 1, "text", Text(0), 1), 0);
    {
        SqliteHolder locker(path_, "BEGIN EXCLUSIVE;");
        ASSERT_TRUE(locker.ok()) << locker.error();
        // The first waits out the busy timeout, the others do not wait at all.
        for (int i = 1; i <= 3; ++i) EXPECT_EQ(store.AppendEvent(id, 1, "text", Text(i), 1 + i), 0);
        EXPECT_EQ(store.kept_events(), 3u);
        EXPECT_NE(store.kept_events_reason().find("locked"), std::string::npos) << store.kept_events_reason();
        EXPECT_EQ(store.FlushKeptEvents(), 0u);
    }
    EXPECT_EQ(store.FlushKeptEvents(), 3u);
    EXPECT_EQ(store.kept_events(), 0u);
    EXPECT_GT(store.AppendEvent(id, 2, "text", Text(4), 10), 0);
    EXPECT_EQ(EventTexts(store, id), (std::vector<std::string>{Text(0), Text(1), Text(2), Text(3), Text(4)}));
    EXPECT_EQ(store.lost_events(), 0);
}

std::vector<std::string> EventKinds(RunStore& store, int64_t run)
{
    std::vector<std::string> out;
    for (const RunEvent& e : store.Events(run, 0, 100000)) out.push_back(e.kind);
    return out;
}

TEST_F(UnitStoreSafety, BoundaryEventsAreWrittenWithTheirIterationAndBehindEventsKeptInMemory)
{
    RunStore store(path_);
    int64_t id = *store.InsertRun(NewRun("/p/tasks/a"));
    const RunStore::BoundaryEvent start{"iteration.start", R"({"session":"ses_1"})", 10};
    store.BeginIteration(id, 1, "ses_1", 0, 10, &start);
    ASSERT_EQ(EventKinds(store, id), (std::vector<std::string>{"iteration.start"}));
    EXPECT_EQ(store.LastEventId(), store.Events(id, 0, 10).front().id);

    // A log line kept in memory while another process holds the lock: the iteration's end, written
    // once the lock is free, goes behind it.
    {
        SqliteHolder locker(path_, "BEGIN EXCLUSIVE;");
        ASSERT_TRUE(locker.ok()) << locker.error();
        EXPECT_EQ(store.AppendEvent(id, 1, "text", Text(1), 11), 0);
        ASSERT_EQ(store.kept_events(), 1u);
    }
    IterationRow it;
    it.run_id = id;
    it.n = 1;
    it.outcome = OutcomeName::kContinue;
    it.ended_at = 12;
    const RunStore::BoundaryEvent end{"iteration.end", R"({"outcome":"continue"})", 12};
    store.FinishIteration(it, &end);
    EXPECT_EQ(store.kept_events(), 0u);
    EXPECT_EQ(EventKinds(store, id), (std::vector<std::string>{"iteration.start", "text", "iteration.end"}));
    EXPECT_EQ(store.Iterations(id).at(0).outcome, OutcomeName::kContinue);

    // An iteration that is already finished still gets its event; a run that is not running gets
    // neither an iteration nor its event.
    store.FinishIteration(it, &end);
    EXPECT_EQ(EventKinds(store, id).size(), 4u);
    ASSERT_TRUE(store.FinishRun(id, RunStatus::kStopped, RunReason::kUser, 13));
    const RunStore::BoundaryEvent late{"iteration.start", R"({"session":"ses_2"})", 14};
    EXPECT_THROW(store.BeginIteration(id, 2, "ses_2", 0, 14, &late), StoreError);
    EXPECT_EQ(EventKinds(store, id).size(), 4u);
    EXPECT_EQ(store.Iterations(id).size(), 1u);
}

/// Appends events of `size` bytes until one is kept rather than written; returns how many were
/// appended (the last one kept), or -1 when every one was written.
int AppendUntilKept(RunStore& store, int64_t run, int& next, std::size_t size)
{
    std::string padding(size, 'x');
    for (int tries = 0; tries < 200; ++tries) {
        int i = next++;
        std::string data = R"({"text":"event )" + std::to_string(i) + R"(","pad":")" + padding + R"("})";
        if (store.AppendEvent(run, 1, "text", data, i) == 0) return tries + 1;
    }
    return -1;
}

TEST_F(UnitStoreSafety, EventsAreKeptWhileTheDiskIsFullAndWrittenWhenSpaceReturns)
{
    TmpfsMount disk(dir_, "size=2m,mode=0700");
    REQUIRE_MOUNT(disk);
    RunStore store(path_);
    int64_t id = *store.InsertRun(NewRun("/p/tasks/a"));
    FillDisk(dir_ + "/filler");
    int next = 0;
    ASSERT_GT(AppendUntilKept(store, id, next, 8192), 0) << "the full disk never refused a write";
    int written_before = next - 1;
    for (int i = 0; i < 5; ++i) EXPECT_EQ(store.AppendEvent(id, 1, "text", Text(next++), 0), 0);
    EXPECT_EQ(store.kept_events(), 6u);
    EXPECT_NE(store.kept_events_reason().find("full"), std::string::npos) << store.kept_events_reason();
    EXPECT_EQ(store.Events(id, 0, 100000).size(), static_cast<std::size_t>(written_before));

    std::filesystem::remove(dir_ + "/filler");
    EXPECT_EQ(store.FlushKeptEvents(), 6u);
    auto events = store.Events(id, 0, 100000);
    ASSERT_EQ(events.size(), static_cast<std::size_t>(next));
    for (int i = 0; i < next; ++i)
        EXPECT_NE(events[i].data.find("event " + std::to_string(i) + "\""), std::string::npos) << events[i].data;
    EXPECT_EQ(store.lost_events(), 0);
}

TEST_F(UnitStoreSafety, EventsBeyondTheLimitAreCountedAndTheRunsLogSaysHowMany)
{
    TmpfsMount disk(dir_, "size=2m,mode=0700");
    REQUIRE_MOUNT(disk);
    RunStore store(path_);
    store.SetKeptEventsLimitForTest(3);
    int64_t id = *store.InsertRun(NewRun("/p/tasks/a"));
    FillDisk(dir_ + "/filler");
    int next = 0;
    ASSERT_GT(AppendUntilKept(store, id, next, 8192), 0) << "the full disk never refused a write";
    int written_before = next - 1;
    for (int i = 0; i < 9; ++i) store.AppendEvent(id, 4, "text", Text(next++), 0);
    EXPECT_EQ(store.kept_events(), 3u);
    EXPECT_EQ(store.lost_events(), 7);

    std::filesystem::remove(dir_ + "/filler");
    EXPECT_EQ(store.FlushKeptEvents(), 3u);
    auto events = store.Events(id, 0, 100000);
    ASSERT_EQ(events.size(), static_cast<std::size_t>(written_before + 3 + 1));
    const RunEvent& note = events.back();
    EXPECT_EQ(note.kind, "note");
    EXPECT_EQ(note.iteration, 4);
    EXPECT_NE(note.data.find("7 log events of this run were lost"), std::string::npos) << note.data;
    EXPECT_NE(note.data.find("full"), std::string::npos) << note.data;
    // Counted once: the next event follows without another note.
    EXPECT_GT(store.AppendEvent(id, 5, "text", Text(next++), 0), 0);
    EXPECT_EQ(store.Events(id, note.id, 10).size(), 1u);
}

}  // namespace
}  // namespace ralph
