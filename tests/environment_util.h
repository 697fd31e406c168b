// Helpers for tests of a hostile environment: a tmpfs over a directory (to make it small or
// read-only), filling a disk, and a SQLite connection of the test process holding a lock.
#pragma once

#include <gtest/gtest.h>

#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <string>
#include <sys/mount.h>
#include <unistd.h>

namespace ralph::test {

/// A tmpfs mounted over `path` for the life of the object (needs CAP_SYS_ADMIN: root).
class TmpfsMount {
public:
    TmpfsMount(std::string path, std::string options) : path_(std::move(path)), options_(std::move(options))
    {
        std::filesystem::create_directories(path_);
        ok_ = mount("tmpfs", path_.c_str(), "tmpfs", 0, options_.c_str()) == 0;
        error_ = ok_ ? 0 : errno;
    }
    ~TmpfsMount()
    {
        if (ok_) umount2(path_.c_str(), MNT_DETACH);
    }
    TmpfsMount(const TmpfsMount&) = delete;
    TmpfsMount& operator=(const TmpfsMount&) = delete;
    bool ok() const { return ok_; }
    std::string error() const { return std::strerror(error_); }
    /// Read-only or writable again; fails (EBUSY) while a file on it is open for writing.
    bool Remount(bool read_only)
    {
        unsigned long flags = MS_REMOUNT | (read_only ? MS_RDONLY : 0);
        return mount(nullptr, path_.c_str(), nullptr, flags, options_.c_str()) == 0;
    }

private:
    std::string path_, options_;
    bool ok_{false};
    int error_{0};
};

#define REQUIRE_MOUNT(m) \
    if (!(m).ok()) GTEST_SKIP() << "cannot mount a tmpfs (" << (m).error() << "): this test needs root"

/// Writes `path` until the disk holding it is full.
inline void FillDisk(const std::string& path)
{
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    std::string chunk(64 * 1024, 'x');
    while (write(fd, chunk.data(), chunk.size()) > 0) {
    }
    // Top up the last bytes a whole chunk no longer fitted into.
    while (write(fd, "x", 1) > 0) {
    }
    close(fd);
}

/// PRAGMA integrity_check of a database, read-only: "ok" when intact.
inline std::string IntegrityCheck(const std::string& path)
{
    sqlite3* db = nullptr;
    std::string result = "cannot open";
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
            result = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return result;
}

/// Another process's hold on the database, as an open sqlite3 shell would have: a connection of
/// the test process that ran `sql` (e.g. "BEGIN EXCLUSIVE;") and keeps its transaction open.
class SqliteHolder {
public:
    SqliteHolder(const std::string& path, const std::string& sql)
    {
        if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
            error_ = sqlite3_errmsg(db_);
            return;
        }
        char* err = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
            error_ = err ? err : "error";
            sqlite3_free(err);
            return;
        }
        ok_ = true;
    }
    ~SqliteHolder()
    {
        Release();
        sqlite3_close(db_);
    }
    void Release()
    {
        if (ok_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        ok_ = false;
    }
    bool ok() const { return ok_; }
    const std::string& error() const { return error_; }

private:
    sqlite3* db_{nullptr};
    bool ok_{false};
    std::string error_;
};

}  // namespace ralph::test
