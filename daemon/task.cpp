#include "daemon/task.h"

#include "common/errors.h"
#include "common/paths.h"

#include <boost/json.hpp>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace ralph {

namespace json = boost::json;

namespace {

bool IsDir(const std::string& path)
{
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

std::string Join(const std::string& dir, const std::string& rel)
{
    if (!rel.empty() && rel.front() == '/') return rel;
    return dir.empty() || dir.back() == '/' ? dir + rel : dir + "/" + rel;
}

std::string BaseName(const std::string& path)
{
    auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string ReadWhole(const std::string& path, bool* ok = nullptr)
{
    std::ifstream in(path, std::ios::binary);
    if (ok) *ok = static_cast<bool>(in);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// The project a working directory belongs to: its git root, else the nearest ancestor with tasks/.
std::string ProjectOf(const std::string& cwd)
{
    std::string real = RealPath(cwd);
    if (real.empty()) return "";
    if (auto root = GitRoot(real); !root.empty()) return root;
    for (std::string d = real;; d = DirName(d)) {
        if (IsDir(d + "/tasks")) return d;
        if (d == "/") return "";
    }
}

Task MakeTask(const std::string& dir)
{
    Task t;
    t.dir = RealPath(dir);
    t.name = BaseName(t.dir);
    t.project_root = GitRoot(t.dir);
    if (t.project_root.empty()) t.project_root = DirName(DirName(t.dir));
    return t;
}

}  // namespace

std::string GitRoot(const std::string& dir)
{
    // What `git rev-parse --show-toplevel` answers, without a subprocess: the nearest ancestor
    // holding .git (a directory, or a file for worktrees and submodules).
    std::string d = RealPath(dir);
    if (d.empty()) return "";
    for (;;) {
        if (Exists(d + "/.git")) return d;
        if (d == "/") return "";
        d = DirName(d);
    }
}

bool IsTaskDir(const std::string& dir)
{
    return Exists(Join(dir, "prompt.md")) || Exists(Join(dir, "prd.json"));
}

std::vector<Task> ListTasks(const std::string& cwd, std::string* project_root)
{
    std::vector<Task> out;
    std::string root = ProjectOf(cwd);
    if (project_root) *project_root = root;
    if (root.empty()) return out;
    DIR* d = opendir((root + "/tasks").c_str());
    if (!d) return out;
    while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        std::string path = root + "/tasks/" + name;
        if (IsDir(path) && IsTaskDir(path)) out.push_back(MakeTask(path));
    }
    closedir(d);
    std::sort(out.begin(), out.end(), [](const Task& a, const Task& b) { return a.name < b.name; });
    return out;
}

std::string ClosestName(const std::string& word, const std::vector<std::string>& candidates)
{
    std::string best;
    std::size_t best_distance = SIZE_MAX;
    for (const std::string& c : candidates) {
        std::vector<std::size_t> prev(c.size() + 1), cur(c.size() + 1);
        for (std::size_t j = 0; j <= c.size(); ++j) prev[j] = j;
        for (std::size_t i = 1; i <= word.size(); ++i) {
            cur[0] = i;
            for (std::size_t j = 1; j <= c.size(); ++j)
                cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (word[i - 1] == c[j - 1] ? 0 : 1)});
            std::swap(prev, cur);
        }
        std::size_t distance = prev[c.size()];
        // A prefix or substring match counts as close too.
        if (c.find(word) != std::string::npos || word.find(c) != std::string::npos) distance = std::min<std::size_t>(distance, 1);
        if (distance < best_distance) {
            best_distance = distance;
            best = c;
        }
    }
    if (best_distance > std::max<std::size_t>(2, word.size() / 3)) return "";
    return best;
}

Result<Task> ResolveTask(const std::string& ref, const std::string& cwd)
{
    if (ref.empty()) return Status(kInvalidParams, "invalid params: empty task reference");
    if (cwd.empty() || cwd.front() != '/') return Status(kInvalidParams, "invalid params: cwd must be an absolute path");
    // 1. an existing directory that is a task, absolute or relative to the working directory
    std::string as_path = Join(cwd, ref);
    bool dir_not_task = false;
    if (IsDir(as_path)) {
        if (IsTaskDir(as_path)) return MakeTask(as_path);
        dir_not_task = true;
    }
    // 2. a bare name, 3. tasks/<name>: relative to the project root of the working directory
    std::string root;
    std::vector<Task> tasks = ListTasks(cwd, &root);
    if (!root.empty()) {
        std::string rel = ref;
        while (rel.size() > 1 && rel.back() == '/') rel.pop_back();
        std::string candidate;
        if (rel.find('/') == std::string::npos) candidate = root + "/tasks/" + rel;
        else if (rel.rfind("tasks/", 0) == 0) candidate = root + "/" + rel;
        if (!candidate.empty() && IsDir(candidate) && IsTaskDir(candidate)) return MakeTask(candidate);
    }
    // 4. not found: say what exists
    std::string message;
    if (dir_not_task) message = as_path + " is a directory but not a task (it has neither prompt.md nor prd.json)";
    else message = "no task '" + ref + "'";
    if (root.empty()) {
        message += ": " + cwd + " is not inside a git repository or a project with a tasks/ directory";
    } else if (tasks.empty()) {
        message += ": " + root + "/tasks has no tasks (a task is tasks/<name>/ with prompt.md or prd.json)";
    } else {
        std::vector<std::string> names;
        for (const Task& t : tasks) names.push_back(t.name);
        std::string base = BaseName(ref);
        if (auto close = ClosestName(base, names); !close.empty()) message += "; did you mean '" + close + "'?";
        message += " Tasks in " + root + ":";
        for (const std::string& n : names) message += " " + n;
    }
    return Status(kTaskNotFound, message);
}

PrdStatus ReadPrd(const std::string& path)
{
    PrdStatus s;
    bool ok = false;
    std::string text = ReadWhole(path, &ok);
    if (!ok) return s;
    s.present = true;
    json::stream_parser parser;
    boost::system::error_code ec;
    std::size_t used = parser.write(text.data(), text.size(), ec);
    if (!ec) parser.finish(ec);
    if (ec) {
        std::size_t upto = std::min(used, text.size());
        int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(upto), '\n'));
        s.error = path + " line " + std::to_string(line) + ": " + ec.message();
        return s;
    }
    json::value v = parser.release();
    if (!v.is_object()) {
        s.error = path + ": expected a JSON object with \"userStories\"";
        return s;
    }
    const json::object& o = v.as_object();
    if (auto* b = o.if_contains("branchName"); b && b->is_string()) s.branch_name = b->as_string().c_str();
    auto* stories = o.if_contains("userStories");
    if (!stories || !stories->is_array()) {
        s.error = path + ": \"userStories\" must be an array";
        return s;
    }
    for (const json::value& story : stories->as_array()) {
        if (!story.is_object()) {
            s.error = path + ": every entry of \"userStories\" must be an object";
            return s;
        }
        ++s.total;
        auto* passes = story.as_object().if_contains("passes");
        if (passes && !passes->is_bool() && !passes->is_null()) {
            s.error = path + ": \"passes\" must be true or false (story " + std::to_string(s.total) + ")";
            return s;
        }
        if (passes && passes->is_bool() && passes->as_bool()) ++s.passing;
    }
    return s;
}

const char* const kDefaultPrompt = R"(You are an autonomous coding agent working on the task "{TASK_NAME}" in {PROJECT_ROOT}.
This is iteration {ITERATION} of at most {MAX_ITERATIONS}; every iteration starts with a fresh session,
so everything you need to remember must be written to files.

1. Read the task's stories in {PRD_FILE} (if it exists) and the notes in {PROGRESS_FILE} (if it exists).
   The task's own files are in {TASK_DIR}.
2. Pick the single most important story whose "passes" is false (lowest "priority" first) and implement it.
3. Run the project's checks (build, tests, linters) and fix what fails.
4. When the story works, set its "passes" to true in {PRD_FILE} and commit your work with a clear message.
5. Append to {PROGRESS_FILE} what you did, what you learned and what is left, for the next iteration.

Work on one story per iteration. When every story passes and nothing is left to do, reply with
<promise>{COMPLETION_PROMISE}</promise> on a line of its own. Never print that tag otherwise.
{VERIFY_OUTPUT})";

std::string LoadPromptTemplate(const Task& task, std::string* source)
{
    for (const std::string& path :
         {task.dir + "/prompt.md", task.project_root + "/.ralph/prompt.md", UserConfigDir() + "/prompt.md"}) {
        bool ok = false;
        std::string text = ReadWhole(path, &ok);
        if (ok) {
            if (source) *source = path;
            return text;
        }
    }
    if (source) *source = "built-in default";
    return kDefaultPrompt;
}

std::string RenderPrompt(const std::string& tmpl, const PromptVars& v)
{
    const std::pair<const char*, std::string> vars[] = {
        {"TASK_NAME", v.task.name},
        {"TASK_DIR", v.task.dir},
        {"PROJECT_ROOT", v.task.project_root},
        {"PRD_FILE", v.task.dir + "/prd.json"},
        {"PROGRESS_FILE", v.task.dir + "/progress.txt"},
        {"BRANCH_NAME", v.branch_name},
        {"RUN_ID", std::to_string(v.run_id)},
        {"ITERATION", std::to_string(v.iteration)},
        {"MAX_ITERATIONS", std::to_string(v.max_iterations)},
        {"COMPLETION_PROMISE", v.completion_promise},
        {"VERIFY_OUTPUT", v.verify_output},
    };
    std::string out;
    out.reserve(tmpl.size() + 256);
    std::size_t i = 0;
    while (i < tmpl.size()) {
        if (tmpl[i] == '{') {
            std::size_t close = tmpl.find('}', i + 1);
            if (close != std::string::npos) {
                std::string_view name(tmpl.data() + i + 1, close - i - 1);
                bool replaced = false;
                for (const auto& [key, value] : vars) {
                    if (name == key) {
                        out += value;
                        replaced = true;
                        break;
                    }
                }
                if (replaced) {
                    i = close + 1;
                    continue;
                }
            }
        }
        out += tmpl[i++];
    }
    return out;
}

RunSettings TaskRunSettings(const RunSettings& base, const Task& task)
{
    std::string ini = task.dir + "/ralph.ini";
    if (!Exists(ini)) return base;
    return ApplyTaskIni(base, ini);
}

bool AppendToFile(const std::string& path, const std::string& text)
{
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    close(fd);
    return ok;
}

}  // namespace ralph
