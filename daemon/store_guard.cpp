// The state database's safety nets: a run's log kept in memory while the database cannot be
// written, and the database put back at its path when it was deleted under ralphd.
#include "daemon/store_guard.h"

#include "common/log.h"
#include "common/paths.h"
#include "daemon/store.h"

#include <boost/json.hpp>
#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ralph {

namespace {

const char* const kFileSuffixes[] = {"", "-wal", "-shm"};

/// Errors the environment causes and that go away: worth keeping an event for.
bool Transient(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
        return true;
    default:
        return false;
    }
}

void SyncDirectory(const std::string& dir)
{
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

}  // namespace

// ---- The run log, kept in memory while it cannot be written ----

int RunStore::InsertEvent(const RunEvent& e)
{
    // Prepared once per connection: an event is the store's most frequent write.
    auto insert = db_.Cached("INSERT INTO run_events (run_id, at, iteration, kind, data) VALUES (?, ?, ?, ?, ?)");
    insert.Bind(e.run_id).Bind(e.at).Bind(e.iteration).Bind(e.kind).Bind(e.data);
    int step = insert.TryStep();
    return step == SQLITE_DONE ? SQLITE_OK : step;
}

int RunStore::WriteEvents(std::deque<RunEvent>& events, bool with_lost_notes)
{
    auto failed = [&](int rc) {
        kept_reason_ = db_.ErrorMessage();
        db_.TryExec("ROLLBACK");  // harmless when none is open
        return rc;
    };
    int rc = db_.TryExec("BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) return failed(rc);
    int64_t last_id = 0;
    auto write = [&](const RunEvent& e) {
        int step = InsertEvent(e);
        if (step == SQLITE_OK) last_id = db_.LastInsertId();
        return step;
    };
    for (const RunEvent& e : events)
        if ((rc = write(e)) != SQLITE_OK) return failed(rc);
    if (with_lost_notes) {
        for (const auto& [run_id, lost] : lost_) {
            std::string message = std::to_string(lost.count) +
                                  " log events of this run were lost: the state database could not be written (" +
                                  kept_reason_ + ") and " + std::to_string(kept_limit_) +
                                  " were already waiting in memory";
            RunEvent note{0, run_id, NowMillis(), lost.iteration, "note",
                          boost::json::serialize(boost::json::object{{"message", message}})};
            if ((rc = write(note)) != SQLITE_OK) return failed(rc);
        }
    }
    if ((rc = db_.TryExec("COMMIT")) != SQLITE_OK) return failed(rc);
    events.clear();
    if (with_lost_notes) lost_.clear();
    last_event_id_ = last_id;
    return SQLITE_OK;
}

void RunStore::CommitWithEvent(sqlite::Transaction& tx, int64_t run_id, int iteration, const BoundaryEvent* event)
{
    if (!event) {
        tx.Commit();
        return;
    }
    if (!kept_.empty() || !lost_.empty()) {
        tx.Commit();
        AppendEvent(run_id, iteration, event->kind, event->data, event->at);  // behind the kept ones
        return;
    }
    if (InsertEvent(RunEvent{0, run_id, event->at, iteration, event->kind, event->data}) != SQLITE_OK)
        db_.Fail("insert event");
    const int64_t id = db_.LastInsertId();
    tx.Commit();
    last_event_id_ = id;
}

bool RunStore::Keep(RunEvent event)
{
    std::size_t size = event.kind.size() + event.data.size();
    if (kept_.size() >= kept_limit_ || kept_bytes_ + size > kKeptBytesLimit) {
        LostEvents& lost = lost_[event.run_id];
        ++lost.count;
        lost.iteration = event.iteration;
        ++lost_total_;
        return false;
    }
    kept_bytes_ += size;
    kept_.push_back(std::move(event));
    return true;
}

int64_t RunStore::AppendEvent(int64_t run_id, int iteration, const std::string& kind, const std::string& data,
                              int64_t at)
{
    RunEvent event{0, run_id, at, iteration, kind, data};
    if (kept_.empty() && lost_.empty()) {
        std::deque<RunEvent> one{event};
        int rc = WriteEvents(one, false);
        if (rc == SQLITE_OK) return last_event_id_;
        if (!Transient(rc)) throw StoreError("state database " + path_ + ": cannot record an event: " + kept_reason_);
        Keep(std::move(event));
        return 0;
    }
    // Behind the events kept earlier, so that the log stays in order.
    bool kept = Keep(std::move(event));
    FlushKeptEvents();
    return kept && kept_.empty() ? last_event_id_ : 0;
}

std::size_t RunStore::FlushKeptEvents()
{
    if (kept_.empty() && lost_.empty()) return 0;
    std::size_t count = kept_.size();
    // Never wait for another process's lock here: the next event or the next second tries again.
    sqlite3_busy_timeout(db_.handle(), 0);
    int rc = WriteEvents(kept_, true);
    sqlite3_busy_timeout(db_.handle(), kBusyTimeoutMs);
    if (rc == SQLITE_OK) {
        kept_bytes_ = 0;
        return count;
    }
    if (!Transient(rc)) {
        // An event the schema refuses (not expected): drop it rather than hold up the others.
        if (!kept_.empty()) {
            kept_bytes_ -= kept_.front().kind.size() + kept_.front().data.size();
            kept_.pop_front();
        } else {
            lost_.clear();
        }
    }
    return 0;
}

// ---- The database deleted while open ----

void RunStore::RememberFiles()
{
    for (std::size_t i = 0; i < files_.size(); ++i) {
        struct stat st {};
        files_[i] = stat((path_ + kFileSuffixes[i]).c_str(), &st) == 0
                        ? FileIdentity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)}
                        : FileIdentity{};
    }
}

bool RunStore::AnyFileDeleted() const
{
    for (std::size_t i = 0; i < files_.size(); ++i) {
        struct stat st {};
        if (files_[i].ino != 0 && stat((path_ + kFileSuffixes[i]).c_str(), &st) != 0 && errno == ENOENT) return true;
    }
    return false;
}

bool RunStore::RestoreIfDeleted()
{
    if (!AnyFileDeleted()) return false;
    const std::string what = "cannot put the deleted state database back at " + path_ + ": ";
    std::string dir = DirName(path_);
    if (auto err = MakeDirs(dir, 0700); !err.empty()) throw StoreError(what + err);
    const std::string copy_path = path_ + ".restoring";
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) unlink((copy_path + suffix).c_str());
    int fd = open(copy_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw StoreError(what + copy_path + ": " + std::strerror(errno));
    close(fd);

    // This connection still sees every page through its open descriptors: copy them all.
    sqlite3* copy = nullptr;
    std::string error;
    if (sqlite3_open_v2(copy_path.c_str(), &copy, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
        error = copy ? sqlite3_errmsg(copy) : "out of memory";
    } else if (sqlite3_backup* backup = sqlite3_backup_init(copy, "main", db_.handle(), "main"); !backup) {
        error = sqlite3_errmsg(copy);
    } else {
        int rc = sqlite3_backup_step(backup, -1);
        sqlite3_backup_finish(backup);
        if (rc != SQLITE_DONE) error = sqlite3_errstr(rc);
    }
    sqlite3_close(copy);
    auto discard_copy = [&] {
        for (const char* suffix : {"", "-journal"}) unlink((copy_path + suffix).c_str());
    };
    if (!error.empty()) {
        discard_copy();
        throw StoreError(what + error);
    }
    // The copy is complete on disk. Closing the old connection removes -wal and -shm by name, so
    // it goes before the copy takes the name; what is left of the deleted files is stale.
    if (!db_.Close()) {
        discard_copy();
        throw StoreError(what + "a statement is still open");
    }
    for (const char* suffix : {"-wal", "-shm"}) unlink((path_ + suffix).c_str());
    if (rename(copy_path.c_str(), path_.c_str()) != 0) {
        // Keep serving from the copy rather than not at all.
        error = std::strerror(errno);
        path_ = copy_path;
    }
    SyncDirectory(dir);
    OpenConnection();
    RememberFiles();
    if (!error.empty())
        throw StoreError(what + "renaming " + copy_path + " failed (" + error + "); ralphd goes on with " + path_ +
                         ": stop ralphd and move it back");
    return true;
}

// ---- StoreGuard ----

StoreGuard::StoreGuard(boost::asio::io_context& io, RunStore& store, std::function<void()> on_events_written)
    : timer_(io), store_(store), on_events_written_(std::move(on_events_written))
{
    Arm();
}

StoreGuard::~StoreGuard()
{
    timer_.cancel();
    on_events_written_ = nullptr;  // its target may be gone already
    Check();  // deleted within the last second, or events still kept: the last chance before closing
    if (std::size_t kept = store_.kept_events(); kept > 0)
        Log(LogLevel::Error) << kept << " run log events kept in memory could not be written and are lost ("
                             << store_.kept_events_reason() << ")";
}

void StoreGuard::Arm()
{
    timer_.expires_after(kInterval);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;  // cancelled: `this` may be gone
        Check();
        Arm();
    });
}

void StoreGuard::Check()
{
    try {
        if (store_.RestoreIfDeleted()) {
            Log(LogLevel::Warning) << "the state database " << store_.path()
                                   << " was deleted while ralphd was running; put it back from ralphd's open "
                                      "connection, nothing is lost";
        }
        last_restore_error_.clear();
    } catch (const StoreError& e) {
        if (e.what() != last_restore_error_) Log(LogLevel::Error) << e.what() << "; ralphd tries again every second";
        last_restore_error_ = e.what();
    }
    std::size_t written = store_.FlushKeptEvents();
    ReportKeptEvents(written);
    if (written > 0 && on_events_written_) on_events_written_();
}

void StoreGuard::ReportKeptEvents(std::size_t written)
{
    std::size_t kept = store_.kept_events();
    if (kept > 0 && reported_kept_ == 0) {
        Log(LogLevel::Warning) << "run log events cannot be written to the state database ("
                               << store_.kept_events_reason() << "): keeping them in memory until it can be written "
                               << "again (" << kept << " so far, at most " << RunStore::kKeptEventsLimit << ")";
    } else if (kept == 0 && reported_kept_ > 0) {
        Log(LogLevel::Info) << "the state database can be written again: wrote the run log events kept in memory"
                            << (written > 0 ? " (" + std::to_string(written) + ")" : std::string());
    }
    reported_kept_ = kept;
    if (int64_t lost = store_.lost_events(); lost > reported_lost_) {
        Log(LogLevel::Warning) << lost - reported_lost_ << " run log events were dropped, more than "
                               << RunStore::kKeptEventsLimit << " were waiting; each run's log says how many";
        reported_lost_ = lost;
    }
}

}  // namespace ralph
