#include "common/sqlite.h"

#include <sqlite3.h>

namespace ralph::sqlite {

std::string Hint(int code)
{
    switch (code & 0xff) {
    case SQLITE_FULL:
        return " (the disk holding the state directory is full: free some space; ralphd tries again)";
    case SQLITE_READONLY:
        return " (the state directory is read-only: make it writable, or point RALPH_STATE_DIR elsewhere)";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return " (another process holds a lock on the database, e.g. an open sqlite3 shell: close it; ralphd tries "
               "again)";
    case SQLITE_IOERR:
        return " (an I/O error: check the disk holding the state directory)";
    default:
        return "";
    }
}

// ---- Statement ----

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), cached_(other.cached_), index_(other.index_)
{
    other.stmt_ = nullptr;
}

Statement::~Statement()
{
    if (!stmt_) return;
    if (cached_) Reset();
    else sqlite3_finalize(stmt_);
}

Statement& Statement::Bind(int64_t v)
{
    sqlite3_bind_int64(stmt_, ++index_, v);
    return *this;
}

Statement& Statement::Bind(double v)
{
    sqlite3_bind_double(stmt_, ++index_, v);
    return *this;
}

Statement& Statement::Bind(const std::string& v) { return Bind(std::string_view(v)); }

Statement& Statement::Bind(std::string_view v)
{
    sqlite3_bind_text(stmt_, ++index_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
}

Statement& Statement::BindNull()
{
    sqlite3_bind_null(stmt_, ++index_);
    return *this;
}

int Statement::TryStep() { return sqlite3_step(stmt_); }

bool Statement::Step()
{
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_->Fail("step");
}

void Statement::Reset()
{
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    index_ = 0;
}

int64_t Statement::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::Real(int col) const { return sqlite3_column_double(stmt_, col); }
bool Statement::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int Statement::Type(int col) const { return sqlite3_column_type(stmt_, col); }

std::string Statement::Text(int col) const
{
    auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
}

// ---- Database ----

Database::~Database() { Close(); }

void Database::Open(const std::string& path, int flags)
{
    Close();
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        int code = db_ ? sqlite3_errcode(db_) : SQLITE_NOMEM;
        sqlite3_close(db_);
        db_ = nullptr;
        throw StoreError("cannot open " + label_ + ": " + msg, code);
    }
}

bool Database::Close()
{
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    cache_.clear();
    if (db_ && sqlite3_close(db_) != SQLITE_OK) return false;
    db_ = nullptr;
    return true;
}

void Database::Exec(const std::string& sql)
{
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db_);
        sqlite3_free(err);
        int code = sqlite3_errcode(db_);
        throw StoreError(label_ + ": " + msg + Hint(code), code);
    }
}

int Database::TryExec(const char* sql) { return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }

Statement Database::Cached(const std::string& sql)
{
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK)
            Fail("prepare");
        it = cache_.emplace(sql, stmt).first;
    }
    return Statement(*this, it->second, true);
}

Statement Database::Prepare(const std::string& sql)
{
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) Fail("prepare");
    return Statement(*this, stmt, false);
}

int64_t Database::LastInsertId() const { return sqlite3_last_insert_rowid(db_); }

std::string Database::ErrorMessage() const { return db_ ? sqlite3_errmsg(db_) : "not open"; }

void Database::Fail(const std::string& what) const
{
    int code = db_ ? sqlite3_errcode(db_) : SQLITE_MISUSE;
    throw StoreError(label_ + ": " + what + ": " + ErrorMessage() + Hint(code), code);
}

// ---- Transaction ----

Transaction::Transaction(Database& db) : db_(db) { db_.Exec("BEGIN IMMEDIATE"); }

Transaction::~Transaction()
{
    if (!done_) db_.TryExec("ROLLBACK");
}

void Transaction::Commit()
{
    db_.Exec("COMMIT");
    done_ = true;
}

}  // namespace ralph::sqlite
