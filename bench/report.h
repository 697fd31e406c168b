// Figures, their summaries (median, p99, min, max, runs) and how they are reported: a markdown
// table for people and a JSON document with every figure for scripts.
#pragma once

#include <boost/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace ralph::bench {

struct Summary {
    double median{0}, p99{0}, min{0}, max{0}, mean{0};
    std::size_t runs{0};
};

/// Nearest-rank percentiles; an empty sample gives runs = 0.
Summary Summarize(std::vector<double> values);
/// One measured value (a ratio, a total): median = min = max = the value, runs = 1.
Summary Single(double value);

/// What a figure is measured against; not an assertion, only reported.
struct Goal {
    enum Kind { AtMost, AtLeast } kind{AtMost};
    double value{0};
    std::string text;  ///< "≤ 1.05", shown in the table
};
inline Goal AtMost(double v, std::string text) { return {Goal::AtMost, v, std::move(text)}; }
inline Goal AtLeast(double v, std::string text) { return {Goal::AtLeast, v, std::move(text)}; }

struct Figure {
    std::string id;        ///< stable key in the JSON, e.g. "iteration.ralph_ms"
    std::string scenario;  ///< "1. Per-iteration cost"
    std::string label;     ///< what was measured, in words
    std::string unit;      ///< "ms", "µs", "MB", "calls/s", "%", "×", "s"
    Summary summary;
    bool show_p99{false};  ///< p99 is meaningful (many runs of one thing)
    std::optional<Goal> goal;  ///< compared with the median
    std::string note;      ///< one short remark for the table
};

class Report {
public:
    void Add(Figure figure);
    /// The figure with this id, if measured.
    const Figure* Find(const std::string& id) const;
    void SetMeta(const std::string& key, boost::json::value value) { meta_[key] = std::move(value); }

    std::string Markdown() const;
    boost::json::object Json() const;

private:
    std::vector<Figure> figures_;
    boost::json::object meta_;
};

/// "12.3", "0.0123", "12 345" — a number for the table with a sensible precision.
std::string FormatNumber(double v);

}  // namespace ralph::bench
