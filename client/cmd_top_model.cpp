#include "client/cmd_top_model.h"

#include "client/client.h"
#include "client/format.h"
#include "common/text.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace ralph::top {

namespace json = boost::json;

namespace {

std::optional<int64_t> OptInt(const json::object& o, const char* key)
{
    auto* v = o.if_contains(key);
    if (!v || !v->is_number()) return std::nullopt;
    return v->to_number<int64_t>();
}

std::string Text(const json::object& o, const char* key)
{
    auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

bool IsActive(const std::string& status) { return status == "running" || status == "queued" || status == "paused"; }

std::string Basename(const std::string& path)
{
    auto end = path.find_last_not_of('/');
    if (end == std::string::npos) return path;
    auto slash = path.rfind('/', end);
    return path.substr(slash == std::string::npos ? 0 : slash + 1, end - (slash == std::string::npos ? 0 : slash + 1) + 1);
}

std::string ClockTime(int64_t unix_ms, const char* format)
{
    time_t t = static_cast<time_t>(unix_ms / 1000);
    tm local{};
    localtime_r(&t, &local);
    char buf[32];
    std::strftime(buf, sizeof buf, format, &local);
    return buf;
}

/// The first line of a text, for one cell.
std::string FirstLine(const std::string& text)
{
    std::string line = text.substr(0, text.find('\n'));
    return Printable(line.substr(0, 200));
}

/// What an event says, briefly, for LAST ACTIVITY; "" for events that say nothing new.
std::string Activity(const json::object& event)
{
    std::string kind = Text(event, "kind");
    const json::value data = event.contains("data") ? event.at("data") : json::value(json::object{});
    std::string iteration = Field(event, "iteration");
    if (kind == "run.start") return "run started";
    if (kind == "iteration.start") return "iteration " + iteration + " started";
    if (kind == "iteration.end") return "iteration " + iteration + " " + Field(data, "outcome");
    if (kind == "tool") {
        std::string title = Field(data, "title");
        return "tool " + Field(data, "tool") + (title == "-" ? "" : ": " + FirstLine(title));
    }
    if (kind == "text") return "text: " + FirstLine(Field(data, "text"));
    if (kind == "note") return "note: " + FirstLine(Field(data, "message"));
    if (kind == "error") return "error: " + FirstLine(Field(data, "message"));
    if (kind == "run.end") return "run " + Field(data, "status") + " (" + Field(data, "reason") + ")";
    return "";
}

std::string Cost(double cost)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "$%.2f", cost);
    return buf;
}

}  // namespace

const char* const kKeysHelp =
    "Keys:\n"
    "  Up, Down, j, k   select a run\n"
    "  Enter            the selected run's whole log, following (Up/Down, PgUp/PgDn scroll; q or Esc back)\n"
    "  s                stop the selected run after its iteration\n"
    "  S                stop it now (aborts the iteration)\n"
    "  p                pause the selected run after its iteration, or resume it when paused\n"
    "  d                its last ended iteration's diff (git projects), in $PAGER (default less -R)\n"
    "  a                attach: leaves the screen for `ralph attach <run>`, back when it quits\n"
    "  q                quit (Ctrl-C too)\n";

void Model::ApplyList(const json::object& list)
{
    if (auto* s = list.if_contains("server"); s && s->is_object()) server_ = s->as_object();
    auto* runs = list.if_contains("runs");
    if (!runs || !runs->is_array()) return;
    std::map<int64_t, RunInfo> fresh;
    for (const json::value& v : runs->as_array()) {
        if (!v.is_object()) continue;
        const json::object& r = v.as_object();
        auto id = OptInt(r, "id");
        if (!id) continue;
        RunInfo info;
        if (auto it = runs_.find(*id); it != runs_.end()) info = it->second;  // keeps its last activity
        info.id = *id;
        info.task = Text(r, "task");
        info.project = Basename(Text(r, "project"));
        info.status = Text(r, "status");
        info.reason = Text(r, "reason");
        info.iteration = OptInt(r, "iteration").value_or(0);
        info.max_iterations = OptInt(r, "max_iterations").value_or(0);
        info.stories_passed = OptInt(r, "stories_passed");
        info.stories_total = OptInt(r, "stories_total");
        info.cost = r.contains("cost") && r.at("cost").is_number() ? std::optional(r.at("cost").to_number<double>())
                                                                    : std::nullopt;
        info.started_at = OptInt(r, "started_at").value_or(0);
        info.ended_at = OptInt(r, "ended_at").value_or(0);
        info.waiting_until = OptInt(r, "waiting_until");
        info.pause_requested = r.contains("pause_requested") && r.at("pause_requested").is_bool() &&
                               r.at("pause_requested").as_bool();
        info.stop_requested = Text(r, "stop_requested");
        fresh[*id] = std::move(info);
    }
    // A run that started since the list was made stays until the next list names it.
    for (auto& [id, info] : runs_)
        if (!fresh.count(id) && IsActive(info.status)) fresh[id] = info;
    runs_ = std::move(fresh);
    for (auto it = logs_.begin(); it != logs_.end();) {
        if (runs_.count(it->first)) {
            ++it;
        } else {
            log_last_id_.erase(it->first);
            it = logs_.erase(it);
        }
    }
}

RunInfo& Model::Row(int64_t id)
{
    RunInfo& info = runs_[id];
    if (info.id == 0) {
        info.id = id;
        info.status = "running";  // it has events: it started after the last list
    }
    return info;
}

void Model::ApplyEvent(const json::object& params)
{
    auto run = OptInt(params, "run");
    auto* e = params.if_contains("event");
    if (!run || !e || !e->is_object()) return;
    const json::object& event = e->as_object();
    RunInfo& info = Row(*run);
    std::string kind = Text(event, "kind");
    int64_t at = OptInt(event, "at").value_or(0);
    if (kind == "state") {
        if (auto status = Text(event, "status"); !status.empty()) info.status = status;
        if (event.contains("reason")) info.reason = Text(event, "reason");
        if (auto n = OptInt(event, "iteration")) info.iteration = *n;
        if (event.contains("stories_passed")) info.stories_passed = OptInt(event, "stories_passed");
        if (event.contains("stories_total")) info.stories_total = OptInt(event, "stories_total");
        if (auto* c = event.if_contains("cost"); c && c->is_number()) info.cost = c->to_number<double>();
        if (event.contains("waiting_until")) info.waiting_until = OptInt(event, "waiting_until");
        if (!IsActive(info.status) && info.ended_at == 0) info.ended_at = at;
        if (info.status != "running") info.stop_requested.clear();
        return;
    }
    if (kind == "run.start") {
        if (auto* d = event.if_contains("data"); d && d->is_object()) {
            if (auto task = Text(d->as_object(), "task"); !task.empty()) info.task = task;
            if (auto n = OptInt(d->as_object(), "max_iterations")) info.max_iterations = *n;
        }
        if (info.started_at == 0) info.started_at = at;
    }
    if (kind == "iteration.start")
        if (auto n = OptInt(event, "iteration")) info.iteration = std::max(info.iteration, *n);
    if (std::string what = Activity(event); !what.empty()) {
        info.last_activity = what;
        info.last_activity_at = at;
    }
    if (logs_.count(*run)) AppendLog(*run, event);
}

void Model::AppendLog(int64_t run, const json::object& event)
{
    // The log read at selection and the stream overlap: an event may come from both.
    if (auto id = OptInt(event, "id")) {
        int64_t& last = log_last_id_[run];
        if (*id <= last) return;
        last = *id;
    }
    std::deque<std::string>& log = logs_[run];
    std::string text = EventLine(event);
    std::size_t start = 0;
    for (;;) {
        auto nl = text.find('\n', start);
        log.push_back(Printable(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start)));
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
    while (log.size() > kLogLines) log.pop_front();
}

void Model::SetLog(int64_t run, const json::array& events)
{
    logs_[run].clear();
    log_last_id_.erase(run);
    for (const json::value& v : events) {
        if (!v.is_object() || Text(v.as_object(), "kind") == "state") continue;
        AppendLog(run, v.as_object());
        if (std::string what = Activity(v.as_object()); !what.empty()) {
            RunInfo& info = Row(run);
            info.last_activity = what;
            info.last_activity_at = OptInt(v.as_object(), "at").value_or(0);
        }
    }
}

const std::deque<std::string>& Model::Log(int64_t run) const
{
    static const std::deque<std::string> empty;
    auto it = logs_.find(run);
    return it == logs_.end() ? empty : it->second;
}

std::vector<const RunInfo*> Model::Rows() const
{
    std::vector<const RunInfo*> rows;
    for (const auto& [id, info] : runs_) rows.push_back(&info);
    std::sort(rows.begin(), rows.end(), [](const RunInfo* a, const RunInfo* b) {
        bool aa = IsActive(a->status), ba = IsActive(b->status);
        if (aa != ba) return aa;
        return a->id > b->id;
    });
    return rows;
}

const RunInfo* Model::Find(int64_t id) const
{
    auto it = runs_.find(id);
    return it == runs_.end() ? nullptr : &it->second;
}

std::optional<int64_t> Model::Selected() const
{
    if (selected_ && runs_.count(*selected_)) return selected_;
    auto rows = Rows();
    if (rows.empty()) return std::nullopt;
    return rows.front()->id;
}

void Model::Move(int delta)
{
    auto rows = Rows();
    if (rows.empty()) return;
    auto current = Selected();
    int index = 0;
    for (std::size_t i = 0; i < rows.size(); ++i)
        if (rows[i]->id == *current) index = static_cast<int>(i);
    index = std::clamp(index + delta, 0, static_cast<int>(rows.size()) - 1);
    selected_ = rows[static_cast<std::size_t>(index)]->id;
}

std::string StatusCell(const RunInfo& run, int64_t now_ms)
{
    if (run.waiting_until && *run.waiting_until > now_ms) return "waiting " + ClockTime(*run.waiting_until, "%H:%M");
    if (run.status == "running" && !run.stop_requested.empty()) return "stopping";
    if (run.status == "running" && run.pause_requested) return "pausing";
    if (run.status.empty()) return "-";
    return run.status;
}

std::string Fit(const std::string& text, int width)
{
    if (width <= 0) return "";
    std::string out;
    int columns = 0;
    for (std::size_t i = 0; i < text.size();) {
        auto c = static_cast<unsigned char>(text[i]);
        std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
        if (columns == width) break;
        out.append(text, i, len);
        ++columns;
        i += len;
    }
    if (columns < width) out.append(static_cast<std::size_t>(width - columns), ' ');
    return out;
}

namespace {

std::vector<std::string> Cells(const RunInfo& r, int64_t now_ms)
{
    std::string iter = std::to_string(r.iteration) + (r.max_iterations ? "/" + std::to_string(r.max_iterations) : "");
    std::string stories = r.stories_passed && r.stories_total
                              ? std::to_string(*r.stories_passed) + "/" + std::to_string(*r.stories_total)
                              : "-";
    std::string cost = r.cost ? Cost(*r.cost) : "-";
    int64_t end = r.ended_at ? r.ended_at : now_ms;
    std::string elapsed = r.started_at ? HumanDuration(std::max<int64_t>(0, end - r.started_at)) : "-";
    std::string last = "-";
    if (r.last_activity_at)
        last = HumanDuration(std::max<int64_t>(0, now_ms - r.last_activity_at)) + " ago " + r.last_activity;
    return {std::to_string(r.id), Printable(r.task.empty() ? "-" : r.task), Printable(r.project.empty() ? "-" : r.project),
            StatusCell(r, now_ms), iter, stories, cost, elapsed, last};
}

void Pad(Screen& screen, int width, int height)
{
    while (static_cast<int>(screen.lines.size()) < height) screen.lines.push_back("");
    screen.lines.resize(static_cast<std::size_t>(height));
    for (std::string& line : screen.lines) line = Fit(line, width);
}

}  // namespace

Screen Layout(const Model& model, const View& view, int width, int height, int64_t now_ms)
{
    Screen screen;
    if (width <= 0 || height <= 0) return screen;
    std::string header = !view.disconnected ? ServerLine(model.server())
                         : view.starting ? "ralphd is starting (stopping what a previous ralphd left); retrying every second"
                                         : "ralphd is not answering; retrying every second" +
                                               (view.disconnected_why.empty() ? "" : " (" + view.disconnected_why + ")");
    screen.lines.push_back("ralph top  " + Printable(header));
    auto rows = model.Rows();
    auto selected = model.Selected();
    const std::string keys = "j/k select  Enter log  s/S stop  p pause  d diff  a attach  q quit";
    std::string status_line = view.message.empty() ? keys : view.message;

    if (view.full_log && selected) {
        const RunInfo* run = model.Find(*selected);
        screen.log_title_row = 1;
        screen.lines.push_back("run " + std::to_string(*selected) + (run ? " " + Printable(run->task) + " " + StatusCell(*run, now_ms) : "") +
                               "  whole log (q or Esc: back; Up/Down, PgUp/PgDn: scroll)");
        const auto& log = model.Log(*selected);
        int room = std::max(0, height - 3);
        int scroll = std::clamp(view.scroll, 0, std::max(0, static_cast<int>(log.size()) - room));
        int end = static_cast<int>(log.size()) - scroll;
        int begin = std::max(0, end - room);
        for (int i = begin; i < end; ++i) screen.lines.push_back(log[static_cast<std::size_t>(i)]);
        while (static_cast<int>(screen.lines.size()) < height - 1) screen.lines.push_back("");
        screen.lines.push_back(status_line);
        Pad(screen, width, height);
        return screen;
    }

    int active = 0;
    for (const RunInfo* r : rows) active += IsActive(r->status) ? 1 : 0;
    screen.lines.push_back(std::to_string(active) + " active, " + std::to_string(rows.size()) + " shown  " +
                           ClockTime(now_ms, "%H:%M:%S"));

    // Columns: natural widths, TASK and PROJECT capped; LAST ACTIVITY takes what is left.
    const std::vector<std::string> headers = {"RUN", "TASK", "PROJECT", "STATUS", "ITER", "STORIES", "COST", "ELAPSED",
                                              "LAST ACTIVITY"};
    std::vector<std::vector<std::string>> cells;
    for (const RunInfo* r : rows) cells.push_back(Cells(*r, now_ms));
    std::vector<int> w(headers.size());
    for (std::size_t i = 0; i < headers.size(); ++i) w[i] = static_cast<int>(headers[i].size());
    for (const auto& row : cells)
        for (std::size_t i = 0; i < row.size(); ++i)
            w[i] = std::max(w[i], static_cast<int>(Fit(row[i], 1000).find_last_not_of(' ') + 1));
    w[1] = std::min(w[1], 16);
    w[2] = std::min(w[2], 14);
    auto fixed = [&] {
        int sum = 0;
        for (std::size_t i = 0; i + 1 < w.size(); ++i) sum += w[i] + 1;
        return sum;
    };
    while (fixed() + 13 > width && (w[1] > 6 || w[2] > 7)) {
        if (w[1] >= w[2] && w[1] > 6) --w[1];
        else if (w[2] > 7) --w[2];
        else --w[1];
    }
    w.back() = std::max(0, width - fixed());
    auto line = [&](const std::vector<std::string>& row) {
        std::string out;
        for (std::size_t i = 0; i < row.size(); ++i) out += Fit(row[i], w[i]) + (i + 1 < row.size() ? " " : "");
        return out;
    };
    screen.table_header_row = static_cast<int>(screen.lines.size());
    screen.lines.push_back(line(headers));

    // The table takes at most half of what is left (at least a line), the log the rest.
    int left = height - static_cast<int>(screen.lines.size()) - 2;  // the log's title and the status line
    int table_rows = std::clamp(static_cast<int>(rows.size()), 1, std::max(1, left / 2));
    int selected_index = 0;
    for (std::size_t i = 0; i < rows.size(); ++i)
        if (selected && rows[i]->id == *selected) selected_index = static_cast<int>(i);
    int first = std::clamp(selected_index - table_rows + 1, 0, std::max(0, static_cast<int>(rows.size()) - table_rows));
    if (rows.empty()) screen.lines.push_back("no runs yet: start one with `ralph run <task>`");
    for (int i = first; i < first + table_rows && i < static_cast<int>(rows.size()); ++i) {
        if (i == selected_index) screen.selected_row = static_cast<int>(screen.lines.size());
        screen.lines.push_back(line(cells[static_cast<std::size_t>(i)]));
    }
    while (static_cast<int>(screen.lines.size()) < screen.table_header_row + 1 + table_rows) screen.lines.push_back("");

    if (selected) {
        screen.log_title_row = static_cast<int>(screen.lines.size());
        screen.lines.push_back("-- run " + std::to_string(*selected) + " log (Enter: whole log) --");
        const auto& log = model.Log(*selected);
        int room = std::max(0, height - static_cast<int>(screen.lines.size()) - 1);
        int begin = std::max(0, static_cast<int>(log.size()) - room);
        for (int i = begin; i < static_cast<int>(log.size()); ++i) screen.lines.push_back(log[static_cast<std::size_t>(i)]);
    }
    while (static_cast<int>(screen.lines.size()) < height - 1) screen.lines.push_back("");
    screen.lines.resize(static_cast<std::size_t>(std::max(0, height - 1)));
    screen.lines.push_back(status_line);
    Pad(screen, width, height);
    return screen;
}

}  // namespace ralph::top
