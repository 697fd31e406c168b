// Tasks (SPEC §1): resolving what a user typed to a task directory, listing a project's tasks,
// rendering the prompt template, and reading prd.json.
#pragma once

#include "common/status.h"
#include "daemon/config.h"

#include <optional>
#include <string>
#include <vector>

namespace ralph {

struct Task {
    std::string name;          ///< the directory's name
    std::string dir;           ///< absolute, symlinks resolved
    std::string project_root;  ///< git root of dir, else dir/../..
};

/// The git work tree containing `dir` (its top level), or "" when there is none.
std::string GitRoot(const std::string& dir);

/// Resolves a task reference (SPEC §1 rules 1-4) against the client's working directory.
/// Fails with kTaskNotFound, whose message lists the tasks that exist and the closest name.
Result<Task> ResolveTask(const std::string& ref, const std::string& cwd);

/// The tasks under <root>/tasks of the project containing cwd (git root, else the nearest
/// ancestor holding tasks/). Empty when there is no such project.
std::vector<Task> ListTasks(const std::string& cwd, std::string* project_root = nullptr);

/// The closest of `candidates` to `word` by edit distance, or "" when none is close.
std::string ClosestName(const std::string& word, const std::vector<std::string>& candidates);

/// True when a directory holds prompt.md or prd.json.
bool IsTaskDir(const std::string& dir);

struct PrdStatus {
    bool present{false};
    std::string error;  ///< set when present but unusable, with the line of a parse error
    int total{0};
    int passing{0};
    std::string branch_name;

    bool valid() const { return present && error.empty(); }
    /// Every story passes (and there is at least one).
    bool complete() const { return valid() && total > 0 && passing == total; }
};

/// Reads <task>/prd.json (compatible with the earlier Python ralph; unknown keys are ignored).
PrdStatus ReadPrd(const std::string& path);

struct PromptVars {
    Task task;
    int64_t run_id{0};
    int iteration{0};
    int max_iterations{0};
    std::string completion_promise;
    std::string branch_name;
    std::string verify_output;  ///< why the last verification failed (SPEC §8); empty otherwise
};

/// The template: the task's prompt.md, <project>/.ralph/prompt.md, <user config>/ralph/prompt.md,
/// or the built-in default. `source` receives where it came from.
std::string LoadPromptTemplate(const Task& task, std::string* source = nullptr);
/// Replaces {NAME} variables; unknown ones stay as they are.
std::string RenderPrompt(const std::string& tmpl, const PromptVars& vars);
extern const char* const kDefaultPrompt;

/// The run settings of a task: config [run], then the task's ralph.ini. Throws ConfigError.
RunSettings TaskRunSettings(const RunSettings& base, const Task& task);

/// Appends text to a file, creating it; returns false on failure.
bool AppendToFile(const std::string& path, const std::string& text);

}  // namespace ralph
