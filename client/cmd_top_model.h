// ralph top, the part without a terminal: what it knows of the server and the runs (fed by run.list
// and run.events notifications), the selection, and the screen laid out as lines of text. The
// ncurses part (cmd_top.cpp) only reads keys, talks to ralphd and paints these lines.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ralph::top {

/// One row of the table.
struct RunInfo {
    int64_t id{0};
    std::string task, project, status, reason;
    int64_t iteration{0}, max_iterations{0};
    std::optional<int64_t> stories_passed, stories_total;
    std::optional<double> cost;
    int64_t started_at{0}, ended_at{0};   ///< unix ms; ended_at 0 while active
    std::optional<int64_t> waiting_until;  ///< unix ms, while backing off
    bool pause_requested{false};
    std::string stop_requested;            ///< "", "after_iteration" or "now"
    int64_t last_activity_at{0};           ///< unix ms of the last event seen
    std::string last_activity;             ///< what it was, briefly ("tool bash", "iteration 3")
};

/// What the screen shows besides the model: the full log, a message, the daemon's absence.
struct View {
    bool full_log{false};     ///< Enter: the selected run's whole log
    int scroll{0};            ///< full log: lines up from the bottom (0 follows)
    std::string message;      ///< the status line's message ("" shows the keys)
    bool disconnected{false}; ///< ralphd does not answer; retrying
    std::string disconnected_why;
    bool starting{false};     ///< while disconnected: ralphd answers, but still warms up
};

/// A laid-out screen: `height` lines, each at most `width` columns.
struct Screen {
    std::vector<std::string> lines;
    int table_header_row{-1};  ///< the column headers' line (shown in reverse video)
    int selected_row{-1};      ///< the selected run's line (shown in reverse video), -1 when none
    int log_title_row{-1};     ///< the line above the log (bold)
};

class Model {
public:
    static constexpr std::size_t kLogLines = 2000;  ///< lines kept per run's log

    /// A run.list result: the server and the runs (active ones and the latest).
    void ApplyList(const boost::json::object& list);
    /// A run.event notification's params ({run, event}); state events update the row.
    void ApplyEvent(const boost::json::object& params);
    /// A run's log from the start (run.events without follow): replaces what was kept of it.
    void SetLog(int64_t run, const boost::json::array& events);
    bool HasLog(int64_t run) const { return logs_.count(run) > 0; }

    /// Rows in table order: active runs first (newest first), then the others, newest first.
    std::vector<const RunInfo*> Rows() const;
    const RunInfo* Find(int64_t id) const;
    const boost::json::object& server() const { return server_; }

    /// Moves the selection by `delta` rows (clamped); keeps it on its run when rows move.
    void Move(int delta);
    /// The selected run (the first row when nothing was selected); nullopt when there are no runs.
    std::optional<int64_t> Selected() const;
    void Select(int64_t id) { selected_ = id; }

    const std::deque<std::string>& Log(int64_t run) const;

private:
    void AppendLog(int64_t run, const boost::json::object& event);
    RunInfo& Row(int64_t id);

    boost::json::object server_;
    std::map<int64_t, RunInfo> runs_;
    std::map<int64_t, std::deque<std::string>> logs_;
    std::map<int64_t, int64_t> log_last_id_;  ///< per log: the last event id in it (no line twice)
    std::optional<int64_t> selected_;
};

/// The table's STATUS cell: the status, and what it waits for ("waiting 14:05", "stopping", ...).
std::string StatusCell(const RunInfo& run, int64_t now_ms);
/// The text cut or padded to exactly `width` columns (one column per UTF-8 character).
std::string Fit(const std::string& text, int width);

/// The whole screen at `now_ms` (unix milliseconds).
Screen Layout(const Model& model, const View& view, int width, int height, int64_t now_ms);

/// The keys, as `ralph top --help` and the `?` line list them.
extern const char* const kKeysHelp;

}  // namespace ralph::top
