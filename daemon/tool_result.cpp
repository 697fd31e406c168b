#include "daemon/tool_result.h"

#include "common/json_util.h"

#include <algorithm>

namespace ralph {

namespace json = boost::json;

namespace {

std::string Relative(const std::string& path, const std::string& root)
{
    if (!root.empty() && path.size() > root.size() + 1 && path.compare(0, root.size(), root) == 0 &&
        path[root.size()] == '/')
        return path.substr(root.size() + 1);
    return path;
}

int64_t CountLines(const std::string& text)
{
    if (text.empty()) return 0;
    return std::count(text.begin(), text.end(), '\n') + (text.back() == '\n' ? 0 : 1);
}

json::object FileChange(const std::string& file, int64_t additions, int64_t deletions)
{
    json::object o;
    o["file"] = file;
    o["additions"] = additions;
    o["deletions"] = deletions;
    return o;
}

/// edit: metadata.filediff; apply_patch and others: metadata.files[]; write: the new content.
json::array FileChanges(const std::string& tool, const json::value& state, const std::string& root)
{
    json::array files;
    const json::value* metadata = At(state, "metadata");
    if (!metadata) return files;
    if (const json::value* list = At(*metadata, "files"); list && list->is_array()) {
        for (const json::value& f : list->as_array()) {
            std::string path = Str(At(f, "filePath"));
            if (path.empty()) path = Str(At(f, "file"));
            if (path.empty()) path = Str(At(f, "relativePath"));
            if (!path.empty())
                files.push_back(FileChange(Relative(path, root), Int(At(f, "additions")), Int(At(f, "deletions"))));
        }
    } else if (const json::value* diff = At(*metadata, "filediff"); diff && diff->is_object()) {
        std::string path = Str(At(*diff, "file"));
        if (path.empty()) path = Str(At(state, "input", "filePath"));
        files.push_back(FileChange(Relative(path, root), Int(At(*diff, "additions")), Int(At(*diff, "deletions"))));
    } else if (tool == "write") {
        // write reports no diff: the whole content is the file's new lines.
        files.push_back(FileChange(Relative(Str(At(state, "input", "filePath")), root),
                                   CountLines(Str(At(state, "input", "content"))), 0));
        if (const json::value* existed = At(*metadata, "exists"); existed && existed->is_bool())
            files.back().as_object()["replaced"] = existed->as_bool();
    }
    return files;
}

/// opencode appends notes to bash output in <shell_metadata> blocks ("User aborted the command",
/// a timeout): moves them out of the output, which then ends with the command's own last line.
std::string TakeShellNotes(std::string& output)
{
    std::string notes;
    for (const std::string tag : {"shell_metadata", "bash_metadata"}) {
        const std::string open = "<" + tag + ">", close = "</" + tag + ">";
        for (auto start = output.find(open); start != std::string::npos; start = output.find(open, start)) {
            auto end = output.find(close, start);
            if (end == std::string::npos) break;
            std::string note = output.substr(start + open.size(), end - start - open.size());
            note.erase(0, note.find_first_not_of(" \n"));
            note.erase(note.find_last_not_of(" \n") + 1);
            if (!note.empty()) notes += (notes.empty() ? "" : "; ") + note;
            output.erase(start, end + close.size() - start);
        }
    }
    if (!notes.empty()) {
        auto last = output.find_last_not_of(" \n");
        output.erase(last == std::string::npos ? 0 : last + 1);
        if (!output.empty()) output += "\n";
    }
    return notes;
}

}  // namespace

json::object ToolEventData(const json::value& part, const std::string& project_root)
{
    static const json::value kEmpty = json::object{};
    const json::value* state_ptr = At(part, "state");
    const json::value& state = state_ptr ? *state_ptr : kEmpty;
    std::string tool = Str(At(part, "tool"));
    std::string status = Str(At(state, "status"));
    json::object data;
    data["tool"] = tool;
    data["title"] = Str(At(state, "title"));
    data["status"] = status;
    if (status == "error") data["error"] = Str(At(state, "error"));

    if (tool == "bash" || tool == "shell") {
        if (const json::value* exit = At(state, "metadata", "exit"); exit && exit->is_number())
            data["exit"] = Int(exit);
        else if (status == "completed")
            data["exit"] = nullptr;  // killed (abort, timeout): no exit status
        std::string output = Str(At(state, "output"));
        if (output.empty()) output = Str(At(state, "metadata", "output"));
        if (std::string notes = TakeShellNotes(output); !notes.empty()) data["note"] = notes;
        if (output.size() > kToolOutputKeep) {
            output.erase(0, output.size() - kToolOutputKeep);
            data["output_truncated"] = true;
        }
        if (!output.empty()) data["output"] = output;
        if (data["title"].as_string().empty()) data["title"] = Str(At(state, "input", "command"));
    } else if (status == "completed") {
        json::array files = FileChanges(tool, state, project_root);
        if (!files.empty()) data["files"] = std::move(files);
    }
    return data;
}

}  // namespace ralph
