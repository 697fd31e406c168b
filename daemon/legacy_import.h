// Importing the history of the earlier Python ralph: its registry `~/.local/share/ralph/sessions.db`
// (table `sessions`, one row per task) becomes finished runs in ralph's store, so that their
// opencode sessions can still be found and attached. The legacy file is opened read-only and
// immutable: it is never written, and not even a -wal or -shm file is created beside it.
#pragma once

#include "daemon/store.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ralph {

/// The legacy database is missing, unreadable, or not shaped like the earlier ralph's; the message
/// names the file and what is missing.
struct LegacyImportError : std::runtime_error {
    LegacyImportError(bool not_found, const std::string& message) : std::runtime_error(message), missing_file(not_found) {}
    bool missing_file;  ///< the file does not exist (rather than being the wrong kind of file)
};

struct LegacyImportOptions {
    std::string path;  ///< absolute path of sessions.db
    /// Whether the earlier ralph's loop worker with this pid still runs. Default: /proc shows a live
    /// process of this user whose command line mentions ralph (a reused pid is not mistaken for it).
    std::function<bool(int pid)> worker_alive;
    /// The parent of a live process, 0 when it is gone. Default: /proc. Before it had a server_pid
    /// column, the earlier ralph recorded an opencode-server loop under the pid of the `opencode
    /// serve` it started, whose parent is the loop.
    std::function<int(int pid)> parent_of;
};

/// What became of one legacy row.
struct LegacyEntry {
    std::string task_name;
    std::string legacy_status;
    std::string action;  ///< "imported", "already_imported" or "skipped"
    int64_t run_id{0};   ///< the run it is (imported or already_imported); 0 when skipped
    std::optional<RunStatus> status;      ///< the run's, when imported; none when skipped
    RunReason reason{RunReason::kNone};  ///< the run's, when imported
    std::string message;                 ///< why it was skipped, or how its status was mapped
};

struct LegacyImportReport {
    std::string path;
    int imported{0}, already_imported{0}, skipped{0};
    std::vector<LegacyEntry> entries;
    std::vector<std::string> warnings;
};

/// The columns the `sessions` table must have (every version of the earlier ralph wrote them);
/// the others are read when present.
extern const char* const kLegacyRequiredColumns[7];

/// Reads the legacy database and records each of its entries as a finished run, all in one
/// transaction: completed, stopped and failed are kept; checkpointed becomes stopped (user); a
/// running entry whose worker is gone becomes stopped (legacy_worker_gone), and one whose worker
/// still runs is skipped until it ends. Entries imported before are not imported again.
/// Throws LegacyImportError (nothing imported) for a missing file, table or column.
LegacyImportReport ImportLegacyDatabase(RunStore& store, const LegacyImportOptions& options);

/// A legacy timestamp in unix milliseconds: unix seconds (an integer or a real, also as text;
/// values above 1e11 are taken as milliseconds) or ISO 8601 text ("2025-01-15T10:30:45.123456",
/// a space for the T, an optional Z or +hh:mm offset; without one it is local time, as Python's
/// datetime.now().isoformat() wrote it). 0 when unreadable.
int64_t ParseLegacyTime(const std::string& text);

/// Percent-encodes a path for an SQLite `file:` URI.
std::string SqliteUriPath(const std::string& path);

}  // namespace ralph
