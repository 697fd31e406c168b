// The outcome of a tool call in `ralph logs`: exit status and output for bash, lines changed for edits.
#include "client/format.h"

#include <vector>

namespace ralph {

namespace json = boost::json;

namespace {

std::vector<std::string> SplitLines(const std::string& text)
{
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    while (!lines.empty() && lines.back().find_first_not_of(" \t\r") == std::string::npos) lines.pop_back();
    return lines;
}

std::string FileChanges(const json::array& files, const std::string& title)
{
    std::string out;
    for (const json::value& f : files) {
        if (!out.empty()) out += ", ";
        if (files.size() > 1 || Field(f, "file") != title) out += Field(f, "file") + " ";
        out += "+" + Field(f, "additions") + " -" + Field(f, "deletions");
    }
    return " (" + out + ")";
}

}  // namespace

std::string ToolOutcome(const json::value& data, bool verbose, const std::string& pad)
{
    if (!data.is_object()) return "";
    const json::object& o = data.as_object();
    std::string out;
    if (const json::value* files = o.if_contains("files"); files && files->is_array() && !files->as_array().empty())
        out += FileChanges(files->as_array(), Field(data, "title"));
    std::string note = Field(data, "note") != "-" ? ": " + Field(data, "note") : "";
    if (const json::value* exit = o.if_contains("exit"))
        out += exit->is_null() ? " (killed" + note + ")" : " (exit " + Field(data, "exit") + note + ")";

    std::vector<std::string> lines = SplitLines(Field(data, "output") == "-" ? "" : Field(data, "output"));
    std::size_t first = 0;
    if (!verbose && lines.size() > static_cast<std::size_t>(kToolOutputTailLines)) {
        first = lines.size() - kToolOutputTailLines;
        out += "\n" + pad + "| (" + std::to_string(first) + " earlier lines; --verbose shows them)";
    } else if (verbose && o.contains("output_truncated")) {
        out += "\n" + pad + "| (the start of this output was not kept)";
    }
    for (std::size_t i = first; i < lines.size(); ++i) out += "\n" + pad + "| " + lines[i];
    return out;
}

}  // namespace ralph
