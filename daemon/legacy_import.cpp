#include "daemon/legacy_import.h"

#include "common/paths.h"
#include "common/sqlite.h"
#include "daemon/opencode_http.h"
#include "daemon/proc_scan.h"
#include "daemon/task.h"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace ralph {

const char* const kLegacyRequiredColumns[7] = {"task_name",  "task_dir",  "status",        "started_at",
                                               "updated_at", "iteration", "max_iterations"};

namespace {

/// The loop worker's pid column, by the names versions of the earlier ralph used.
const char* const kPidColumns[] = {"worker_pid", "pid", "loop_pid"};

/// Columns that later versions of the earlier ralph added, read as NULL when absent.
const char* const kOptionalColumns[] = {"server_port", "opencode_session_id", "agent",     "session_type",
                                        "current_story", "workspace_dir",     "transport", "remote_host"};

bool IsNumber(const std::string& s)
{
    if (s.empty()) return false;
    char* end = nullptr;
    std::strtod(s.c_str(), &end);
    return end && *end == '\0' && s.find_first_not_of("0123456789.+-eE") == std::string::npos;
}

int64_t FromUnixNumber(double v)
{
    if (!std::isfinite(v) || v <= 0) return 0;
    if (v > 1e11) return static_cast<int64_t>(v);  // already milliseconds
    return static_cast<int64_t>(std::llround(v * 1000));
}

/// A value of any SQLite type as the text a person would read.
struct Cell {
    int type{SQLITE_NULL};
    std::string text;
    int64_t integer{0};
    double real{0};

    bool null() const { return type == SQLITE_NULL; }
    std::string Text() const { return null() ? std::string() : text; }
    int64_t Int() const
    {
        if (type == SQLITE_INTEGER) return integer;
        if (type == SQLITE_FLOAT) return static_cast<int64_t>(real);
        if (type == SQLITE_TEXT && IsNumber(text)) return static_cast<int64_t>(std::strtod(text.c_str(), nullptr));
        return 0;
    }
    int64_t Time() const
    {
        if (type == SQLITE_INTEGER) return FromUnixNumber(static_cast<double>(integer));
        if (type == SQLITE_FLOAT) return FromUnixNumber(real);
        if (type == SQLITE_TEXT) return ParseLegacyTime(text);
        return 0;
    }
};

Cell ReadCell(const sqlite::Statement& s, int col)
{
    Cell c;
    c.type = s.Type(col);
    if (c.type == SQLITE_INTEGER) c.integer = s.Int(col);
    if (c.type == SQLITE_FLOAT) c.real = s.Real(col);
    if (c.type != SQLITE_NULL) c.text = s.Text(col);
    return c;
}

/// The legacy database, opened so that nothing is ever written beside or into it.
class LegacyDb {
public:
    explicit LegacyDb(const std::string& path) : path_(path), db_(path)
    {
        struct stat st {};
        if (stat(path.c_str(), &st) != 0)
            throw LegacyImportError(true, "no database of the earlier ralph at " + path +
                                              " (it kept one at ~/.local/share/ralph/sessions.db); "
                                              "give its path: ralph import-legacy PATH");
        if (!S_ISREG(st.st_mode)) throw LegacyImportError(false, path + " is not a file");
        // immutable=1: no locks, no journal or WAL, so the file and its directory stay untouched.
        std::string uri = "file:" + SqliteUriPath(path) + "?mode=ro&immutable=1";
        try {
            db_.Open(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
        } catch (const StoreError& e) {
            throw LegacyImportError(false, e.what());
        }
    }

    /// Runs a query, calling `row` for each result row.
    void Query(const std::string& sql, const std::function<void(const sqlite::Statement&)>& row)
    {
        try {
            auto s = db_.Prepare(sql);
            while (s.Step()) row(s);
        } catch (const StoreError&) {
            Fail();
        }
    }

private:
    [[noreturn]] void Fail()
    {
        std::string msg = db_.ErrorMessage();
        if (msg.find("not a database") != std::string::npos)
            throw LegacyImportError(false, path_ + " is not an SQLite database (" + msg +
                                               "); the earlier ralph kept its registry in ~/.local/share/ralph/sessions.db");
        throw LegacyImportError(false, "cannot read " + path_ + ": " + msg);
    }
    std::string path_;
    sqlite::Database db_;
};

std::string QuoteIdentifier(const std::string& name)
{
    std::string out = "\"";
    for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

std::string Join(const std::vector<std::string>& items, const char* sep)
{
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
    return out;
}

/// A path without "." and ".." parts or a trailing slash (for a directory that may be gone).
std::string LexicallyClean(const std::string& path)
{
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (i < path.size()) {
        std::size_t j = path.find('/', i);
        if (j == std::string::npos) j = path.size();
        std::string part = path.substr(i, j - i);
        if (part == "..") {
            if (!parts.empty()) parts.pop_back();
        } else if (!part.empty() && part != ".") {
            parts.push_back(part);
        }
        i = j + 1;
    }
    std::string out;
    for (const auto& p : parts) out += "/" + p;
    if (path.empty() || path[0] != '/') return out.empty() ? "." : out.substr(1);
    return out.empty() ? "/" : out;
}

std::string RealOrClean(const std::string& path)
{
    std::string real = RealPath(path);
    return real.empty() ? LexicallyClean(path) : real;
}

bool DefaultWorkerAlive(int pid)
{
    if (pid <= 0) return false;
    ProcFs proc;
    auto st = proc.Stat(pid);
    if (!st || st->state == 'Z') return false;
    auto uid = proc.Uid(pid);
    if (!uid || *uid != getuid()) return false;
    for (const std::string& arg : proc.Cmdline(pid)) {
        std::string lower = arg;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        if (lower.find("ralph") != std::string::npos) return true;
    }
    return false;
}

int DefaultParentOf(int pid)
{
    auto st = ProcFs().Stat(pid);
    return st && st->state != 'Z' ? st->ppid : 0;
}

std::string HumanStatus(const RunRow& r)
{
    return std::string(Name(r.status)) + (r.reason == RunReason::kNone ? "" : " (" + std::string(Name(r.reason)) + ")");
}

}  // namespace

std::string SqliteUriPath(const std::string& path)
{
    return UrlEncode(path);  // the same unreserved set, '/' kept
}

int64_t ParseLegacyTime(const std::string& raw)
{
    std::string text = raw;
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.erase(0, 1);
    if (IsNumber(text)) return FromUnixNumber(std::strtod(text.c_str(), nullptr));
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, consumed = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &year, &month, &day, &consumed) != 3 || consumed != 10) return 0;
    std::size_t pos = 10;
    double seconds = 0;
    if (pos < text.size() && (text[pos] == 'T' || text[pos] == ' ')) {
        ++pos;
        int n = 0;
        if (std::sscanf(text.c_str() + pos, "%2d:%2d%n", &hour, &minute, &n) != 2 || n != 5) return 0;
        pos += 5;
        if (pos < text.size() && text[pos] == ':') {
            ++pos;
            std::size_t end = pos;
            while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) ++end;
            if (end == pos) return 0;
            seconds = std::strtod(text.substr(pos, end - pos).c_str(), nullptr);
            pos = end;
        }
    }
    std::optional<int> offset_minutes;  // none: local time
    if (pos < text.size()) {
        if (text[pos] == 'Z' || text[pos] == 'z') {
            offset_minutes = 0;
            ++pos;
        } else if (text[pos] == '+' || text[pos] == '-') {
            int sign = text[pos] == '-' ? -1 : 1;
            int oh = 0, om = 0, n = 0;
            std::string rest = text.substr(pos + 1);
            if (std::sscanf(rest.c_str(), "%2d:%2d%n", &oh, &om, &n) == 2 && n == 5) pos += 6;
            else if (std::sscanf(rest.c_str(), "%2d%2d%n", &oh, &om, &n) == 2 && n == 4) pos += 5;
            else if (std::sscanf(rest.c_str(), "%2d%n", &oh, &n) == 1 && n == 2) pos += 3;
            else return 0;
            offset_minutes = sign * (oh * 60 + om);
        }
    }
    if (pos != text.size()) return 0;
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || seconds >= 61) return 0;
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = 0;
    time_t t;
    if (offset_minutes) {
        t = timegm(&tm);
        t -= static_cast<time_t>(*offset_minutes) * 60;
    } else {
        tm.tm_isdst = -1;
        t = mktime(&tm);
    }
    if (t == static_cast<time_t>(-1)) return 0;
    return static_cast<int64_t>(t) * 1000 + static_cast<int64_t>(std::llround(seconds * 1000));
}

LegacyImportReport ImportLegacyDatabase(RunStore& store, const LegacyImportOptions& options)
{
    LegacyImportReport report;
    report.path = options.path;
    if (options.path.empty() || options.path[0] != '/')
        throw LegacyImportError(false, "the legacy database path must be absolute: '" + options.path + "'");
    auto worker_alive = options.worker_alive ? options.worker_alive : DefaultWorkerAlive;
    auto parent_of = options.parent_of ? options.parent_of : DefaultParentOf;

    LegacyDb db(options.path);
    std::set<std::string> columns;
    db.Query("SELECT name FROM pragma_table_info('sessions')",
             [&](const sqlite::Statement& s) { columns.insert(ReadCell(s, 0).Text()); });
    if (columns.empty()) {
        std::vector<std::string> tables;
        db.Query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                 [&](const sqlite::Statement& s) { tables.push_back(ReadCell(s, 0).Text()); });
        throw LegacyImportError(false, options.path + " has no table 'sessions' (" +
                                           (tables.empty() ? std::string("it has no tables")
                                                           : "its tables: " + Join(tables, ", ")) +
                                           "); is it the earlier ralph's sessions.db?");
    }
    std::vector<std::string> missing;
    for (const char* c : kLegacyRequiredColumns)
        if (!columns.count(c)) missing.push_back(c);
    if (!missing.empty())
        throw LegacyImportError(false, "table 'sessions' of " + options.path + " lacks the column" +
                                           (missing.size() > 1 ? "s " : " ") + Join(missing, ", ") +
                                           ", which every version of the earlier ralph wrote; is it its "
                                           "sessions.db? Nothing was imported");
    std::string pid_column;
    for (const char* c : kPidColumns)
        if (pid_column.empty() && columns.count(c)) pid_column = c;

    if (struct stat st {}; stat((options.path + "-wal").c_str(), &st) == 0 && st.st_size > 0)
        report.warnings.push_back(options.path + "-wal exists: entries the earlier ralph has not checkpointed yet "
                                                 "are not read; stop it and import again to get them");

    std::vector<std::string> select;
    for (const char* c : kLegacyRequiredColumns) select.push_back(QuoteIdentifier(c));
    for (const char* c : kOptionalColumns) {
        // Before session_type (added with server_port) every loop ran in tmux, as the earlier ralph's
        // own migration records; a table of another shape says nothing.
        const bool tmux_era = std::string(c) == "session_type" && !columns.count("server_port");
        const char* absent = tmux_era ? "'tmux'" : "NULL";
        select.push_back(columns.count(c) ? QuoteIdentifier(c) : absent);
    }
    select.push_back(pid_column.empty() ? "NULL" : QuoteIdentifier(pid_column));
    // Until the earlier ralph had server_pid, an opencode-server loop's pid was its server's.
    const bool pid_may_be_server = !columns.count("server_pid");

    std::vector<ImportedRun> runs;
    std::vector<std::size_t> entry_of_run;  // runs[i] reports into report.entries[entry_of_run[i]]
    db.Query("SELECT " + Join(select, ", ") + " FROM sessions ORDER BY rowid", [&](const sqlite::Statement& s) {
        Cell task_name = ReadCell(s, 0), task_dir = ReadCell(s, 1), status = ReadCell(s, 2),
             started = ReadCell(s, 3), updated = ReadCell(s, 4), iteration = ReadCell(s, 5),
             max_iterations = ReadCell(s, 6), port = ReadCell(s, 7), session = ReadCell(s, 8), agent = ReadCell(s, 9),
             session_type = ReadCell(s, 10), story = ReadCell(s, 11), workspace = ReadCell(s, 12),
             transport = ReadCell(s, 13), remote_host = ReadCell(s, 14), pid = ReadCell(s, 15);
        LegacyEntry entry;
        entry.task_name = task_name.Text();
        entry.legacy_status = status.Text();
        entry.action = "skipped";
        auto skip = [&](const std::string& why) {
            entry.message = why;
            report.entries.push_back(entry);
        };
        std::string dir_text = task_dir.Text();
        if (dir_text.empty()) return skip("no task_dir");
        if (dir_text[0] != '/') return skip("task_dir '" + dir_text + "' is not an absolute path");

        ImportedRun in;
        RunRow& r = in.run;
        r.task_dir = RealOrClean(dir_text);
        r.task_name = entry.task_name.empty() ? r.task_dir.substr(r.task_dir.find_last_of('/') + 1) : entry.task_name;
        r.project_root = GitRoot(r.task_dir);
        if (r.project_root.empty()) r.project_root = DirName(DirName(r.task_dir));
        OutcomeName outcome{OutcomeName::kNone};
        const std::string& legacy = entry.legacy_status;
        if (legacy == "completed") {
            r.status = RunStatus::kCompleted;
            outcome = OutcomeName::kComplete;
        } else if (legacy == "stopped") {
            r.status = RunStatus::kStopped;
            outcome = OutcomeName::kContinue;
        } else if (legacy == "failed") {
            r.status = RunStatus::kFailed;
            outcome = OutcomeName::kError;
        } else if (legacy == "checkpointed") {
            r.status = RunStatus::kStopped;
            r.reason = RunReason::kUser;
            outcome = OutcomeName::kContinue;
        } else if (legacy == "running") {
            if (pid_column.empty())
                return skip("running in the earlier ralph, and its table has no worker pid column to tell whether "
                            "it still runs; stop it there, then import again");
            if (!transport.Text().empty() && transport.Text() != "local")
                return skip("running in the earlier ralph on " +
                            (remote_host.Text().empty() ? std::string("another machine") : remote_host.Text()) +
                            " (transport " + transport.Text() +
                            "), where ralph cannot see whether it still runs; stop it there, then import again");
            int worker = static_cast<int>(pid.Int());
            if (worker > 0 && worker_alive(worker))
                return skip("still running in the earlier ralph (worker pid " + std::to_string(worker) +
                            "); import again once it has ended");
            const bool pid_is_server = worker > 0 && pid_may_be_server && session_type.Text() == "opencode-server";
            if (int loop = pid_is_server ? parent_of(worker) : 0; loop > 0 && worker_alive(loop))
                return skip("still running in the earlier ralph (worker pid " + std::to_string(loop) +
                            ", which started its opencode serve, pid " + std::to_string(worker) +
                            "); import again once it has ended");
            r.status = RunStatus::kStopped;
            r.reason = RunReason::kLegacyWorkerGone;
            outcome = OutcomeName::kInterrupted;
        } else {
            return skip("unknown status '" + legacy + "'");
        }
        r.started_at = started.Time();
        r.ended_at = updated.Time();
        if (!r.started_at) r.started_at = r.ended_at;
        if (!r.ended_at) r.ended_at = r.started_at;
        if (!r.started_at)
            return skip("unreadable times: started_at '" + started.Text() + "', updated_at '" + updated.Text() + "'");
        r.iteration = static_cast<int>(std::clamp<int64_t>(iteration.Int(), 0, INT_MAX));
        r.max_iterations = static_cast<int>(std::clamp<int64_t>(max_iterations.Int(), r.iteration, INT_MAX));
        r.last_port = static_cast<int>(std::clamp<int64_t>(port.Int(), 0, 65535));  // history only, never live
        r.session_id = session.Text();
        r.legacy = {agent.Text(), session_type.Text(), story.Text(), workspace.Text()};
        r.promise = "";
        r.max_consecutive_failures = 0;
        if (!r.session_id.empty()) {
            IterationRow it;
            it.n = std::max(1, r.iteration);
            it.session_id = r.session_id;
            it.outcome = outcome;
            it.started_at = r.ended_at;  // the legacy registry only knows when the entry last changed
            it.ended_at = r.ended_at;
            it.port = r.last_port;
            if (outcome == OutcomeName::kError) it.error = "failed in the earlier ralph";
            if (outcome == OutcomeName::kInterrupted) it.error = "the earlier ralph's worker ended without recording an outcome";
            r.iteration = std::max(r.iteration, it.n);
            in.iterations.push_back(it);
        }
        // The legacy registry keeps one row per task name, replaced by each new loop of it: the
        // task directory and the start time name one loop.
        in.legacy_id = "legacy:" + dir_text + "@" + started.Text();
        in.note = "imported from the earlier ralph (" + options.path + "): it recorded '" + legacy + "'" +
                  (r.last_port ? ", port " + std::to_string(r.last_port) : std::string()) + "; kept as " +
                  HumanStatus(r);
        if (legacy == "checkpointed") entry.message = "checkpointed: kept as stopped (user)";
        if (r.reason == RunReason::kLegacyWorkerGone)
            entry.message = "running, but its worker" + (pid.Int() > 0 ? " (pid " + std::to_string(pid.Int()) + ")" : std::string()) +
                            " is gone: kept as stopped (legacy_worker_gone)";
        entry.status = r.status;
        entry.reason = r.reason;
        entry_of_run.push_back(report.entries.size());
        report.entries.push_back(entry);
        runs.push_back(std::move(in));
    });

    std::vector<ImportOutcome> outcomes = store.ImportFinishedRuns(runs);
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        LegacyEntry& e = report.entries[entry_of_run[i]];
        e.run_id = outcomes[i].run_id;
        if (outcomes[i].inserted) {
            e.action = "imported";
        } else {
            e.action = "already_imported";
            e.message = "imported before as run " + std::to_string(outcomes[i].run_id);
        }
    }
    for (const LegacyEntry& e : report.entries) {
        if (e.action == "imported") ++report.imported;
        else if (e.action == "already_imported") ++report.already_imported;
        else ++report.skipped;
    }
    return report;
}

}  // namespace ralph
