// The one SQLite wrapper: a connection with a cache of prepared statements, statements with
// positional binding, and BEGIN IMMEDIATE transactions. The state database (daemon/store*), the
// import of the earlier ralph's database and the benchmark all go through it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace ralph {

/// A failed SQLite call, with a message a person can act on. `code` is SQLite's result code (0
/// when the failure was not SQLite's own).
struct StoreError : std::runtime_error {
    explicit StoreError(const std::string& message, int sqlite_code = 0)
        : std::runtime_error(message), code(sqlite_code) {}
    int code;
};

namespace sqlite {

class Database;

/// A prepared statement. Bind() fills the parameters in order; Step() runs it. A statement from
/// Database::Cached() goes back to the cache, reset, when this object goes away; one made with
/// Prepare() is finalized.
class Statement {
public:
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&&) = delete;
    ~Statement();

    Statement& Bind(int64_t v);
    Statement& Bind(int v) { return Bind(static_cast<int64_t>(v)); }
    Statement& Bind(bool v) { return Bind(static_cast<int64_t>(v ? 1 : 0)); }
    Statement& Bind(double v);
    Statement& Bind(const std::string& v);
    Statement& Bind(std::string_view v);
    Statement& BindNull();
    /// NULL for 0 (columns where 0 means "none", such as a port or an end time).
    Statement& BindNullableInt(int64_t v) { return v == 0 ? BindNull() : Bind(v); }

    /// Runs one step; true when a row is available. Throws StoreError on failure.
    bool Step();
    /// Runs one step and returns SQLite's result code; never throws.
    int TryStep();
    /// Back to the start, keeping nothing bound.
    void Reset();

    int64_t Int(int col) const;
    double Real(int col) const;
    std::string Text(int col) const;
    bool IsNull(int col) const;
    /// SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB or SQLITE_NULL.
    int Type(int col) const;

private:
    friend class Database;
    Statement(Database& db, sqlite3_stmt* stmt, bool cached) : db_(&db), stmt_(stmt), cached_(cached) {}
    Database* db_;
    sqlite3_stmt* stmt_;
    bool cached_;
    int index_{0};
};

/// One connection, used from one thread.
class Database {
public:
    /// `label` names the database in messages ("state database /path/ralph.db").
    explicit Database(std::string label) : label_(std::move(label)) {}
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    /// Opens `path` with sqlite3_open_v2 flags; throws StoreError "cannot open LABEL: why".
    void Open(const std::string& path, int flags);
    /// Finalizes the cached statements and closes the connection; false (and still open) when a
    /// statement made with Prepare() is alive.
    bool Close();
    bool is_open() const { return db_ != nullptr; }
    sqlite3* handle() const { return db_; }

    /// Runs SQL text (several statements allowed); throws StoreError on failure.
    void Exec(const std::string& sql);
    /// Runs SQL text and returns SQLite's result code; never throws.
    int TryExec(const char* sql);
    /// A statement prepared once per connection and kept: for the statements that run again and again.
    Statement Cached(const std::string& sql);
    /// A statement for one use (e.g. SQL made up at run time).
    Statement Prepare(const std::string& sql);

    int64_t LastInsertId() const;
    /// SQLite's message for the last failure on this connection.
    std::string ErrorMessage() const;
    /// Throws StoreError "LABEL: WHAT: SQLite's message (what a person can do about it)".
    [[noreturn]] void Fail(const std::string& what) const;
    const std::string& label() const { return label_; }

private:
    std::string label_;
    sqlite3* db_{nullptr};
    std::map<std::string, sqlite3_stmt*, std::less<>> cache_;
};

/// BEGIN IMMEDIATE ... COMMIT, rolled back when left without Commit().
class Transaction {
public:
    explicit Transaction(Database& db);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void Commit();

private:
    Database& db_;
    bool done_{false};
};

/// What a person can do about SQLite result code `code`, for the errors the environment causes
/// (a full disk, a read-only directory, a lock held elsewhere); "" for others.
std::string Hint(int code);

}  // namespace sqlite
}  // namespace ralph
