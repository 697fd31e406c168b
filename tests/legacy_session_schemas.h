// The `sessions` table of the earlier Python ralph at each point of its history, as its session.py
// created it (github.com/rilesc555/ralph-claude: src/ralph_uv/session.py, then src/ralph/session.py),
// and rows written the way its register() wrote them. Test data for the history import.
#pragma once

#include <sqlite3.h>

#include <map>
#include <ostream>
#include <set>
#include <string>

namespace ralph::test {

// The table as the earlier ralph created it (src/ralph/session.py), `pid` being the loop worker.
inline const char* kLegacySchema = R"sql(
CREATE TABLE sessions (
    task_name TEXT PRIMARY KEY,
    task_dir TEXT NOT NULL,
    pid INTEGER NOT NULL,
    tmux_session TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    iteration INTEGER NOT NULL DEFAULT 0,
    current_story TEXT NOT NULL DEFAULT '',
    max_iterations INTEGER NOT NULL DEFAULT 50,
    session_type TEXT NOT NULL DEFAULT 'tmux',
    server_port INTEGER,
    server_url TEXT NOT NULL DEFAULT '',
    opencode_session_id TEXT NOT NULL DEFAULT ''
);
)sql";

struct LegacyEra {
    const char* commits;  ///< the commits that created this table
    const char* create;
};

inline const LegacyEra kLegacyEras[] = {
    {"3610cdf 9f2aa55 27f9f82 (11 columns)", R"sql(
CREATE TABLE IF NOT EXISTS sessions (
    task_name TEXT PRIMARY KEY,
    task_dir TEXT NOT NULL,
    pid INTEGER NOT NULL,
    tmux_session TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    iteration INTEGER NOT NULL DEFAULT 0,
    current_story TEXT NOT NULL DEFAULT '',
    max_iterations INTEGER NOT NULL DEFAULT 50
);)sql"},
    {"6429b3f (session_type, server_port)", R"sql(
CREATE TABLE IF NOT EXISTS sessions (
    task_name TEXT PRIMARY KEY,
    task_dir TEXT NOT NULL,
    pid INTEGER NOT NULL,
    tmux_session TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    iteration INTEGER NOT NULL DEFAULT 0,
    current_story TEXT NOT NULL DEFAULT '',
    max_iterations INTEGER NOT NULL DEFAULT 50,
    session_type TEXT NOT NULL DEFAULT 'tmux',
    server_port INTEGER
);)sql"},
    {"e0cc9dd (transport, remote)", R"sql(
CREATE TABLE IF NOT EXISTS sessions (
    task_name TEXT PRIMARY KEY,
    task_dir TEXT NOT NULL,
    pid INTEGER NOT NULL,
    tmux_session TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    iteration INTEGER NOT NULL DEFAULT 0,
    current_story TEXT NOT NULL DEFAULT '',
    max_iterations INTEGER NOT NULL DEFAULT 50,
    session_type TEXT NOT NULL DEFAULT 'tmux',
    server_port INTEGER,
    transport TEXT NOT NULL DEFAULT 'local',
    ziti_service TEXT NOT NULL DEFAULT '',
    ziti_identity TEXT NOT NULL DEFAULT '',
    remote_host TEXT NOT NULL DEFAULT '',
    server_url TEXT NOT NULL DEFAULT ''
);)sql"},
    {"db6cea2 (opencode_session_id, remote)", R"sql(
CREATE TABLE IF NOT EXISTS sessions (
    task_name TEXT PRIMARY KEY,
    task_dir TEXT NOT NULL,
    pid INTEGER NOT NULL,
    tmux_session TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    iteration INTEGER NOT NULL DEFAULT 0,
    current_story TEXT NOT NULL DEFAULT '',
    max_iterations INTEGER NOT NULL DEFAULT 50,
    session_type TEXT NOT NULL DEFAULT 'tmux',
    server_port INTEGER,
    transport TEXT NOT NULL DEFAULT 'local',
    ziti_service TEXT NOT NULL DEFAULT '',
    ziti_identity TEXT NOT NULL DEFAULT '',
    remote_host TEXT NOT NULL DEFAULT '',
    server_url TEXT NOT NULL DEFAULT '',
    opencode_session_id TEXT NOT NULL DEFAULT ''
);)sql"},
    {"eb52079 98c0a61 3383dd3 3f4c2ce (local only)", R"sql(
CREATE TABLE IF NOT EXISTS sessions (
    task_name TEXT PRIMARY KEY,
    task_dir TEXT NOT NULL,
    pid INTEGER NOT NULL,
    tmux_session TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    iteration INTEGER NOT NULL DEFAULT 0,
    current_story TEXT NOT NULL DEFAULT '',
    max_iterations INTEGER NOT NULL DEFAULT 50,
    session_type TEXT NOT NULL DEFAULT 'tmux',
    server_port INTEGER,
    server_url TEXT NOT NULL DEFAULT '',
    opencode_session_id TEXT NOT NULL DEFAULT ''
);)sql"},
    {"de9c682 (server_pid)", R"sql(
CREATE TABLE IF NOT EXISTS sessions (
    task_name TEXT PRIMARY KEY,
    task_dir TEXT NOT NULL,
    pid INTEGER NOT NULL,
    tmux_session TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    iteration INTEGER NOT NULL DEFAULT 0,
    current_story TEXT NOT NULL DEFAULT '',
    max_iterations INTEGER NOT NULL DEFAULT 50,
    session_type TEXT NOT NULL DEFAULT 'tmux',
    server_port INTEGER,
    server_url TEXT NOT NULL DEFAULT '',
    opencode_session_id TEXT NOT NULL DEFAULT '',
    server_pid INTEGER
);)sql"},
    {"7a9cf60 4b27802 (workspaces)", R"sql(
CREATE TABLE IF NOT EXISTS sessions (
    task_name TEXT PRIMARY KEY,
    task_dir TEXT NOT NULL,
    pid INTEGER NOT NULL,
    tmux_session TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    iteration INTEGER NOT NULL DEFAULT 0,
    current_story TEXT NOT NULL DEFAULT '',
    max_iterations INTEGER NOT NULL DEFAULT 50,
    session_type TEXT NOT NULL DEFAULT 'tmux',
    server_port INTEGER,
    server_url TEXT NOT NULL DEFAULT '',
    opencode_session_id TEXT NOT NULL DEFAULT '',
    workspace_dir TEXT NOT NULL DEFAULT '',
    workspace_name TEXT NOT NULL DEFAULT ''
);)sql"},
};

inline void PrintTo(const LegacyEra& era, std::ostream* out) { *out << era.commits; }

/// The names of the columns of `sessions` in a database file.
inline std::set<std::string> LegacyColumns(const std::string& path)
{
    std::set<std::string> out;
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) {
        sqlite3_exec(
            db, "SELECT name FROM pragma_table_info('sessions')",
            [](void* set, int, char** values, char**) {
                static_cast<std::set<std::string>*>(set)->insert(values[0]);
                return 0;
            },
            &out, nullptr);
    }
    sqlite3_close(db);
    return out;
}

/// An INSERT OR REPLACE as session.py's register() wrote it, of the columns this era has.
inline std::string LegacyInsert(const std::set<std::string>& columns, const std::map<std::string, std::string>& values)
{
    std::string names, literals;
    for (const auto& [name, literal] : values) {
        if (!columns.count(name)) continue;
        names += (names.empty() ? "" : ", ") + name;
        literals += (literals.empty() ? "" : ", ") + literal;
    }
    return "INSERT OR REPLACE INTO sessions (" + names + ") VALUES (" + literals + ");\n";
}

}  // namespace ralph::test
