#include "client/format.h"

#include "client/client.h"
#include "common/duration.h"
#include "common/jsonrpc.h"
#include "common/rpc_client.h"
#include "common/text.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <vector>
#include <unistd.h>

namespace ralph {

namespace json = boost::json;

void PrintTable(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& raw_rows)
{
    // Cells hold names from the file system: never let one move the cursor or forge a line.
    std::vector<std::vector<std::string>> rows;
    for (const auto& raw : raw_rows) {
        rows.emplace_back();
        for (const auto& cell : raw) rows.back().push_back(Printable(cell));
    }
    std::vector<std::size_t> width(headers.size());
    for (std::size_t i = 0; i < headers.size(); ++i) width[i] = headers[i].size();
    for (const auto& row : rows)
        for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
    auto line = [&](const std::vector<std::string>& cells) {
        std::string out;
        for (std::size_t i = 0; i < cells.size(); ++i) {
            out += cells[i];
            if (i + 1 < cells.size()) out += std::string(width[i] - cells[i].size() + 2, ' ');
        }
        std::cout << out << "\n";
    };
    line(headers);
    for (const auto& row : rows) line(row);
}

std::string Field(const json::value& object, const char* key)
{
    if (!object.is_object()) return "-";
    auto* v = object.as_object().if_contains(key);
    if (!v || v->is_null()) return "-";
    if (v->is_string()) return std::string(v->as_string());
    return json::serialize(*v);
}

static std::string Clock(long long unix_ms) { return FormatLocalTime(unix_ms, "%H:%M:%S"); }

static std::string Indent(const std::string& text, const std::string& pad)
{
    std::string out;
    for (char c : text) {
        out += c;
        if (c == '\n') out += pad;
    }
    while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) out.pop_back();
    return out;
}

std::string EventLine(const json::object& e, bool verbose)
{
    const json::value data = e.contains("data") ? e.at("data") : json::value(json::object{});
    std::string kind = Field(e, "kind");
    long long at = e.contains("at") && e.at("at").is_int64() ? e.at("at").as_int64() : 0;
    std::string prefix = Clock(at) + "  #" + Field(e, "iteration") + "  ";
    if (kind == "run.start")
        return prefix + "run started: task " + Field(data, "task") + ", up to " + Field(data, "max_iterations") +
               (Field(data, "max_iterations") == "1" ? " iteration" : " iterations");
    if (kind == "iteration.start") return prefix + "iteration started (session " + Field(data, "session") + ")";
    if (kind == "text") return prefix + "  " + Indent(Field(data, "text"), std::string(prefix.size() + 2, ' '));
    if (kind == "tool") {
        std::string line = prefix + "  tool " + Field(data, "tool");
        if (Field(data, "title") != "-" && !Field(data, "title").empty()) line += ": " + Field(data, "title");
        if (Field(data, "status") == "error") line += " (failed: " + Field(data, "error") + ")";
        return line + ToolOutcome(data, verbose, std::string(prefix.size() + 4, ' '));
    }
    if (kind == "note") {
        // A hook's or a verification's output, when it has some.
        std::string line = prefix + "  note: " + Field(data, "message");
        if (Field(data, "output") != "-" && !Field(data, "output").empty())
            line += "\n" + std::string(prefix.size() + 4, ' ') + Indent(Field(data, "output"), std::string(prefix.size() + 4, ' '));
        return line;
    }
    if (kind == "error") return prefix + "  error: " + Field(data, "message");
    if (kind == "iteration.end") {
        std::string line = prefix + "iteration ended: " + Field(data, "outcome");
        if (data.is_object() && data.as_object().contains("tokens_in"))
            line += " (tokens " + Field(data, "tokens_in") + " in, " + Field(data, "tokens_out") + " out)";
        if (Field(data, "error") != "-") line += ": " + Field(data, "error");
        if (Field(data, "verify") != "-") line += "; verification " + Field(data, "verify");
        // Its checkpoint's change summary (SPEC §9), in git projects.
        if (data.is_object() && data.as_object().contains("files_changed")) {
            line += "\n" + prefix + "  changes: " + Changes(data);
            if (Field(data, "commits") != "0") line += ", " + Field(data, "commits") + " commit(s) by the agent";
            line += "; checkpoint " + Field(data, "checkpoint").substr(0, 12);
        }
        return line;
    }
    if (kind == "run.end") {
        std::string line = prefix + "run " + Field(data, "status") + " (" + Field(data, "reason") + ")";
        if (Field(data, "message") != "-") line += ": " + Field(data, "message");
        return line;
    }
    return prefix + kind + " " + json::serialize(data);
}

std::string StoriesAndBudgetLeft(const json::object& state, const json::object& budget, long long started_at_ms,
                                 long long now_ms)
{
    std::string out;
    if (Field(state, "stories_total") != "-")
        out += "  stories " + Field(state, "stories_passed") + "/" + Field(state, "stories_total");
    std::vector<std::string> left;
    auto number = [](const json::object& o, const char* key) -> std::optional<double> {
        const json::value* v = o.if_contains(key);
        if (!v || !v->is_number()) return std::nullopt;
        return v->to_number<double>();
    };
    if (auto max_cost = number(budget, "max_cost")) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "$%.2f", std::max(0.0, *max_cost - number(state, "cost").value_or(0)));
        left.push_back(buf);
    }
    if (auto max_tokens = number(budget, "max_tokens")) {
        double used = 0;
        if (auto* t = state.if_contains("tokens"); t && t->is_object())
            for (const char* k : {"input", "output", "reasoning"}) used += number(t->as_object(), k).value_or(0);
        left.push_back(std::to_string(static_cast<long long>(std::max(0.0, *max_tokens - used))) + " tokens");
    }
    if (auto max_time = number(budget, "max_time"); max_time && started_at_ms > 0)
        left.push_back(HumanDuration(std::max(0LL, static_cast<long long>(*max_time) - (now_ms - started_at_ms))));
    for (std::size_t i = 0; i < left.size(); ++i) out += (i ? ", " : "  left: ") + left[i];
    return out;
}

std::string Changes(const json::value& it)
{
    if (!it.is_object() || !it.as_object().contains("files_changed") || it.at("files_changed").is_null()) return "-";
    const std::string files = Field(it, "files_changed");
    return files + (files == "1" ? " file" : " files") + " +" + Field(it, "insertions") + " -" + Field(it, "deletions");
}

std::string LegacyLines(const json::value& run)
{
    const json::object& o = run.as_object();
    auto it = o.find("legacy");
    if (it == o.end() || !it->value().is_object()) return "";
    const json::value& legacy = it->value();
    return "  legacy:     agent " + Field(legacy, "agent") + ", ran in " + Field(legacy, "session_type") + "\n" +
           "  story:      " + Field(legacy, "current_story") + "\n" +
           "  workspace:  " + Field(legacy, "workspace_dir") + "\n";
}

std::string ServerLine(const json::object& s)
{
    std::string state = Field(s, "state");
    std::string line = "server: " + state;
    if (Field(s, "mode") == "external") line += " (external " + Field(s, "url") + ")";
    else if (state == "running" || state == "unhealthy" || state == "starting") {
        if (Field(s, "url") != "-") line += " at " + Field(s, "url");
        std::vector<std::string> facts;
        if (Field(s, "pid") != "-") facts.push_back("pid " + Field(s, "pid"));
        if (Field(s, "version") != "-") facts.push_back("opencode " + Field(s, "version"));
        if (s.contains("uptime") && s.at("uptime").is_number())
            facts.push_back("up " + HumanDuration(static_cast<long long>(s.at("uptime").to_number<double>() * 1000)));
        if (!facts.empty()) {
            line += " (";
            for (std::size_t i = 0; i < facts.size(); ++i) line += (i ? ", " : "") + facts[i];
            line += ")";
        }
    } else if (state == "stopped") {
        line += " (starts on the next run or attach)";
    }
    if (Field(s, "last_error") != "-" && state != "running") line += "; last error: " + Field(s, "last_error");
    return line;
}

}  // namespace ralph
