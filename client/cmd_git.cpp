// ralph diff and ralph restore (SPEC §9): a run's changes from its git checkpoints.
#include "client/commands.h"
#include "client/format.h"

#include <iostream>
#include <unistd.h>

namespace ralph {

namespace json = boost::json;

namespace {

/// The patch, coloured as git colours it when stdout is a terminal.
void PrintPatch(const std::string& patch)
{
    const bool colour = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    if (!colour) {
        std::cout << patch;
        return;
    }
    std::size_t start = 0;
    while (start < patch.size()) {
        std::size_t nl = patch.find('\n', start);
        std::string line = patch.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
        const char* code = nullptr;
        if (line.rfind("diff --git", 0) == 0 || line.rfind("index ", 0) == 0 || line.rfind("--- ", 0) == 0 ||
            line.rfind("+++ ", 0) == 0)
            code = "1";
        else if (line.rfind("@@", 0) == 0) code = "36";
        else if (!line.empty() && line[0] == '+') code = "32";
        else if (!line.empty() && line[0] == '-') code = "31";
        if (code) std::cout << "\033[" << code << "m" << line << "\033[0m\n";
        else std::cout << line << "\n";
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
}

/// One line per file, as `git diff --stat` lists them, then the totals.
void PrintStat(const json::array& files)
{
    std::size_t width = 0;
    for (const auto& f : files) width = std::max(width, Field(f, "path").size());
    long long ins = 0, del = 0;
    for (const auto& f : files) {
        std::string path = Field(f, "path");
        std::cout << " " << path << std::string(width - path.size(), ' ') << " | ";
        if (f.at("binary").as_bool()) std::cout << "Bin";
        else {
            long long i = f.at("insertions").as_int64(), d = f.at("deletions").as_int64();
            ins += i;
            del += d;
            std::cout << (i + d) << " " << std::string(static_cast<std::size_t>(std::min(i, 40LL)), '+')
                      << std::string(static_cast<std::size_t>(std::min(d, 40LL)), '-');
        }
        const std::string status = Field(f, "status");
        if (status == "renamed") std::cout << " (renamed from " << Field(f, "old_path") << ")";
        else if (status != "modified") std::cout << " (" << status << ")";
        std::cout << "\n";
    }
    std::cout << " " << files.size() << " file" << (files.size() == 1 ? "" : "s") << " changed, " << ins
              << " insertion" << (ins == 1 ? "" : "s") << "(+), " << del << " deletion" << (del == 1 ? "" : "s")
              << "(-)\n";
}

int Diff(Client& client, const std::vector<std::string>& args)
{
    CommandArgs vm(*FindCommand("diff"), args, "ref", 1);
    json::object params{{"run", RunRef(Positional(vm, "task or run"))}, {"cwd", client.cwd}, {"stat", vm.Switch("stat")}};
    if (vm.Has("iteration")) params["iteration"] = vm.Int("iteration", 1, 1000000);
    json::value diff = client.Call("run.diff", params);
    if (client.json_output) {
        PrintJson(diff);
        return kExitOk;
    }
    const json::array& files = diff.at("files").as_array();
    if (files.empty()) {
        std::cout << "no changes\n";
        return kExitOk;
    }
    if (vm.Switch("stat")) PrintStat(files);
    else PrintPatch(std::string(diff.at("patch").as_string()));
    return kExitOk;
}

int Restore(Client& client, const std::vector<std::string>& args)
{
    CommandArgs vm(*FindCommand("restore"), args, "ref", 1);
    json::object params{{"run", RunRef(Positional(vm, "task or run"))}, {"cwd", client.cwd}};
    if (vm.Has("iteration")) params["iteration"] = vm.Int("iteration", 0, 1000000);
    json::value restored = client.Call("run.restore", params);
    if (client.json_output) {
        PrintJson(restored);
        return kExitOk;
    }
    const std::string n = Field(restored, "iteration");
    std::cout << "restored the work tree of run " << Field(restored, "run") << " to "
              << (n == "0" ? "how it was before the run (snapshot 0)" : "the end of iteration " + n) << "\n"
              << "the work tree before the restore is kept on " << Field(restored, "backup_ref")
              << "; to undo: git restore --source=" << Field(restored, "backup_ref") << " --worktree -- .\n";
    return kExitOk;
}

int Clean(Client& client, const std::vector<std::string>& args)
{
    CommandArgs vm(*FindCommand("clean"), args, "ref", 1);
    const bool finished = vm.Switch("finished");
    if (finished == vm.Has("ref")) throw UsageError("give a task or run, or --finished");
    json::object params{{"cwd", client.cwd}, {"finished", finished}, {"checkpoints", vm.Switch("checkpoints")},
                        {"force", vm.Switch("force")}};
    if (!finished) params["run"] = RunRef(vm.Text("ref"));
    json::value result = client.Call("run.clean", params);
    if (client.json_output) {
        PrintJson(result);
        return kExitOk;
    }
    const json::array& cleaned = result.at("cleaned").as_array();
    if (cleaned.empty()) std::cout << "nothing to clean\n";
    for (const json::value& c : cleaned) {
        std::cout << "run " << Field(c, "run") << ":";
        if (!c.at("worktree").is_null())
            std::cout << " removed the worktree " << Field(c, "worktree") << "; its branch " << Field(c, "branch")
                      << " stays";
        else std::cout << " deleted its checkpoints";
        std::cout << "\n";
    }
    return kExitOk;
}

}  // namespace

const std::vector<Command>& GitCommands()
{
    static const std::vector<Command> commands = {
        {"diff", "<task or run> [--iteration N] [--stat]",
         "what a run changed, from its git checkpoints (the whole run, or one iteration)", Diff, true,
         {{"iteration", "N", "only iteration N (its snapshot against the one before)", "the whole run"},
          {"stat", nullptr, "the files with lines added and removed, no patch", "off"}}},
        {"restore", "<task or run> [--iteration N]",
         "put the run's work tree back to a snapshot (0: before the run); the current one is kept on a backup ref",
         Restore, true, {{"iteration", "N", "the snapshot after iteration N; 0 is before the run", "0"}}},
        {"clean", "<task or run>|--finished [--checkpoints] [--force]",
         "remove an ended run's worktree (its branch stays), or every ended run's", Clean, true,
         {{"finished", nullptr, "every ended run", "off"},
          {"checkpoints", nullptr, "also delete the runs' checkpoint refs (refs/ralph/runs/<run>)", "off"},
          {"force", nullptr, "remove a worktree even when it holds files neither its branch nor its last snapshot has",
           "off"}}},
    };
    return commands;
}

}  // namespace ralph
