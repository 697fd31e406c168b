#include "bench/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

namespace ralph::bench {

namespace json = boost::json;

Summary Summarize(std::vector<double> values)
{
    Summary s;
    s.runs = values.size();
    if (values.empty()) return s;
    std::sort(values.begin(), values.end());
    auto rank = [&](double p) {
        // Nearest rank: the smallest value with at least p of the sample at or below it.
        auto idx = static_cast<std::size_t>(std::ceil(p * static_cast<double>(values.size())));
        return values[std::clamp<std::size_t>(idx, 1, values.size()) - 1];
    };
    std::size_t n = values.size();
    s.median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    s.p99 = rank(0.99);
    s.min = values.front();
    s.max = values.back();
    s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(n);
    return s;
}

Summary Single(double value)
{
    Summary s;
    s.median = s.p99 = s.min = s.max = s.mean = value;
    s.runs = 1;
    return s;
}

void Report::Add(Figure figure)
{
    for (auto& f : figures_) {
        if (f.id == figure.id) {
            f = std::move(figure);
            return;
        }
    }
    figures_.push_back(std::move(figure));
}

const Figure* Report::Find(const std::string& id) const
{
    for (const auto& f : figures_)
        if (f.id == id) return &f;
    return nullptr;
}

std::string FormatNumber(double v)
{
    char buf[64];
    double a = std::fabs(v);
    if (a == 0) return "0";
    if (a >= 10000) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
        // Thin grouping for readability: 123456 -> 123 456.
        std::string s = buf, out;
        int digits = 0;
        for (auto it = s.rbegin(); it != s.rend(); ++it) {
            if (std::isdigit(static_cast<unsigned char>(*it)) && digits && digits % 3 == 0) out.insert(out.begin(), ' ');
            if (std::isdigit(static_cast<unsigned char>(*it))) ++digits;
            out.insert(out.begin(), *it);
        }
        return out;
    }
    if (a >= 100) std::snprintf(buf, sizeof buf, "%.0f", v);
    else if (a >= 10) std::snprintf(buf, sizeof buf, "%.1f", v);
    else if (a >= 1) std::snprintf(buf, sizeof buf, "%.2f", v);
    else if (a >= 0.01) std::snprintf(buf, sizeof buf, "%.3f", v);
    else std::snprintf(buf, sizeof buf, "%.4f", v);
    return buf;
}

static bool Meets(const Goal& g, double v) { return g.kind == Goal::AtMost ? v <= g.value : v >= g.value; }

std::string Report::Markdown() const
{
    std::ostringstream out;
    std::string scenario;
    out << "| Figure | Median | p99 | Min | Max | Runs | Goal | |\n";
    out << "|---|--:|--:|--:|--:|--:|---|---|\n";
    for (const Figure& f : figures_) {
        if (f.scenario != scenario) {
            scenario = f.scenario;
            out << "| **" << scenario << "** | | | | | | | |\n";
        }
        const Summary& s = f.summary;
        std::string unit = f.unit.empty() ? "" : " " + f.unit;
        bool single = s.runs == 1;
        out << "| " << f.label << (f.note.empty() ? "" : " (" + f.note + ")") << " | " << FormatNumber(s.median) << unit
            << " | " << (f.show_p99 && !single ? FormatNumber(s.p99) : "") << " | "
            << (single ? "" : FormatNumber(s.min)) << " | " << (single ? "" : FormatNumber(s.max)) << " | " << s.runs
            << " | " << (f.goal ? f.goal->text : "") << " | "
            << (f.goal ? (Meets(*f.goal, s.median) ? "met" : "**missed**") : "") << " |\n";
    }
    return out.str();
}

json::object Report::Json() const
{
    json::array figures;
    for (const Figure& f : figures_) {
        json::object o{{"id", f.id},           {"scenario", f.scenario},    {"label", f.label},
                       {"unit", f.unit},       {"median", f.summary.median}, {"min", f.summary.min},
                       {"max", f.summary.max}, {"mean", f.summary.mean},     {"runs", f.summary.runs}};
        o["p99"] = f.show_p99 ? json::value(f.summary.p99) : json::value(nullptr);
        if (!f.note.empty()) o["note"] = f.note;
        if (f.goal) {
            o["goal"] = json::object{{"kind", f.goal->kind == Goal::AtMost ? "at_most" : "at_least"},
                                     {"value", f.goal->value},
                                     {"text", f.goal->text},
                                     {"met", Meets(*f.goal, f.summary.median)}};
        }
        figures.push_back(std::move(o));
    }
    return {{"meta", meta_}, {"figures", std::move(figures)}};
}

}  // namespace ralph::bench
