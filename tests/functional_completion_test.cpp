// ralph completion bash|zsh|fish: the scripts come from the command table, load in their shell and
// complete commands, options and the current project's task names (through the real ralphd).
#include "client/cmd_completion.h"
#include "client/commands.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <unistd.h>

namespace ralph::test {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> Lines(const std::string& text)
{
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(line);
    std::sort(out.begin(), out.end());
    return out;
}

/// The program's path on $PATH, or "" (RunProgram does not search PATH).
std::string FindProgram(const std::string& name)
{
    std::istringstream path(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin");
    for (std::string dir; std::getline(path, dir, ':');)
        if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
    return "";
}

TEST(UnitCompletion, ReadsOptionsValuesTasksAndChoicesFromUsage)
{
    UsageSpec run = ParseUsage("<task> [-n N] [--model P/M] [-f] [-v|--verbose]");
    EXPECT_TRUE(run.tasks);
    EXPECT_FALSE(run.files);
    EXPECT_EQ(run.options, (std::vector<std::string>{"-n", "--model", "-f", "-v", "--verbose"}));
    EXPECT_EQ(run.value_options, (std::vector<std::string>{"-n", "--model"}));
    UsageSpec shells = ParseUsage("bash|zsh|fish");
    EXPECT_EQ(shells.words, (std::vector<std::string>{"bash", "zsh", "fish"}));
    EXPECT_TRUE(shells.options.empty());
    UsageSpec import = ParseUsage("[PATH]");
    EXPECT_TRUE(import.files);
    EXPECT_FALSE(import.tasks);
    UsageSpec attach = ParseUsage("[<task or run>] [--session ID] [--latest]");
    EXPECT_TRUE(attach.tasks);
    EXPECT_EQ(attach.options, (std::vector<std::string>{"--session", "--latest"}));
    EXPECT_EQ(attach.value_options, (std::vector<std::string>{"--session"}));
    EXPECT_TRUE(attach.words.empty());  // "or" and "run>" are prose, not choices
}

TEST(UnitCompletion, EveryScriptNamesEveryCommandAndOptionOfTheTable)
{
    for (const std::string shell : {"bash", "zsh", "fish"}) {
        std::string script = CompletionScript(shell);
        ASSERT_FALSE(script.empty()) << shell;
        for (const Command* c : AllCommands()) {
            std::string name = c->name;
            EXPECT_NE(script.find(name.substr(name.find(' ') + 1)), std::string::npos) << shell << ": " << name;
            for (const std::string& option : ParseUsage(c->usage).options)
                EXPECT_NE(script.find(" " + option), std::string::npos) << shell << ": " << name << " " << option;
        }
    }
    EXPECT_TRUE(CompletionScript("tcsh").empty());
}

class FunctionalCompletion : public ::testing::Test {
protected:
    TestEnv env;
    std::string project;
    std::string bash_script;

    void SetUp() override
    {
        project = env.dir + "/proj";
        for (const char* task : {"hello-world", "help-docs", "other"}) {
            std::filesystem::create_directories(project + "/tasks/" + task);
            WriteFile(project + "/tasks/" + task + "/prompt.md", "do it\n");
        }
        auto r = env.Ralph({"completion", "bash"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        bash_script = env.dir + "/ralph.bash";
        WriteFile(bash_script, r.out);
    }

    /// What bash completes for the words of a command line (the last one being completed).
    std::vector<std::string> CompleteInBash(const std::vector<std::string>& words)
    {
        std::string line = "source '" + bash_script + "' || exit 9\nCOMP_WORDS=('" + std::string(RALPH_PATH) + "'";
        for (const auto& w : words) line += " '" + w + "'";
        line += ")\nCOMP_CWORD=" + std::to_string(words.size()) + "\n_ralph\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n";
        auto r = RunProgram({FindProgram("bash"), "--norc", "-c", line}, env.env, project, 30s);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(r.err, "");
        return Lines(r.out);
    }
};

TEST_F(FunctionalCompletion, BashScriptLoadsAndCompletesCommandsOptionsAndTaskNames)
{
    env.StartDaemon();
    auto registered = RunProgram({FindProgram("bash"), "--norc", "-c", "source '" + bash_script + "' && complete -p ralph"}, env.env);
    EXPECT_EQ(registered.exit_code, 0) << registered.err;
    EXPECT_NE(registered.out.find("-F _ralph"), std::string::npos) << registered.out;

    EXPECT_EQ(CompleteInBash({"run", "hel"}), (std::vector<std::string>{"hello-world", "help-docs"}));
    EXPECT_EQ(CompleteInBash({"logs", "o"}), (std::vector<std::string>{"other"}));
    // Past the options, and with global options before the command.
    EXPECT_EQ(CompleteInBash({"--json", "run", "-n", "3", "hello"}), (std::vector<std::string>{"hello-world"}));
    EXPECT_EQ(CompleteInBash({"run", "-n", ""}), std::vector<std::string>{});  // -n takes a number
    EXPECT_EQ(CompleteInBash({"lo"}), (std::vector<std::string>{"logs"}));
    EXPECT_EQ(CompleteInBash({"logs", "--ver"}), (std::vector<std::string>{"--verbose", "--version"}));
    EXPECT_EQ(CompleteInBash({"daemon", "st"}), (std::vector<std::string>{"start", "status", "stop"}));
    EXPECT_EQ(CompleteInBash({"completion", ""}), (std::vector<std::string>{"bash", "fish", "zsh"}));
    EXPECT_EQ(CompleteInBash({"tasks", ""}), std::vector<std::string>{});
}

TEST_F(FunctionalCompletion, WithoutADaemonTaskNamesAreEmptyAndNoDaemonStarts)
{
    EXPECT_EQ(CompleteInBash({"run", "hel"}), std::vector<std::string>{});
    EXPECT_FALSE(PathExists(env.socket)) << "a Tab press started ralphd";
    EXPECT_EQ(CompleteInBash({"ru"}), (std::vector<std::string>{"run"}));
}

TEST_F(FunctionalCompletion, UnknownShellIsAUsageError)
{
    auto r = env.Ralph({"completion", "tcsh"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("unknown shell 'tcsh' (bash, zsh or fish)"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(env.Ralph({"completion"}).exit_code, 2);
}

TEST_F(FunctionalCompletion, ZshScriptLoadsAndCompletesTaskNames)
{
    std::string zsh = FindProgram("zsh");
    if (zsh.empty()) GTEST_SKIP() << "zsh is not installed; the zsh script is not tried";
    env.StartDaemon();
    auto script = env.Ralph({"completion", "zsh"});
    ASSERT_EQ(script.exit_code, 0) << script.err;
    WriteFile(env.dir + "/_ralph", script.out);
    auto r = RunProgram({zsh, "-f", "-c",
                         "autoload -U compinit && compinit -u -D && source '" + env.dir + "/_ralph' && "
                         "_ralph_candidates '" RALPH_PATH "' hel run run"},
                        env.env, project, 30s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(Lines(r.out), (std::vector<std::string>{"hello-world", "help-docs", "other"}));
}

TEST_F(FunctionalCompletion, FishScriptLoadsAndCompletesTaskNames)
{
    std::string fish = FindProgram("fish");
    if (fish.empty()) GTEST_SKIP() << "fish is not installed; the fish script is not tried";
    env.StartDaemon();
    auto script = env.Ralph({"completion", "fish"});
    ASSERT_EQ(script.exit_code, 0) << script.err;
    WriteFile(env.dir + "/ralph.fish", script.out);
    // The script completes for the command name "ralph": put the built client on PATH under it.
    std::filesystem::create_directories(env.dir + "/bin");
    std::filesystem::create_symlink(RALPH_PATH, env.dir + "/bin/ralph");
    auto fish_env = env.env;
    fish_env["PATH"] = env.dir + "/bin:" + std::string(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin");
    auto r = RunProgram({fish, "--no-config", "-c", "source '" + env.dir + "/ralph.fish'; complete -C 'ralph run hel'"},
                        fish_env, project, 30s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> names;
    for (const auto& line : Lines(r.out)) names.push_back(line.substr(0, line.find('\t')));
    EXPECT_EQ(names, (std::vector<std::string>{"hello-world", "help-docs"}));
}

TEST(FunctionalCompletionInstall, CmakeInstallPutsTheScriptsInTheStandardDirectories)
{
    TestEnv env;
    std::string prefix = env.dir + "/prefix";
    auto r = RunProgram({RALPH_CMAKE, "--install", RALPH_BINARY_DIR, "--prefix", prefix}, {}, "", 120s);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    for (const char* shell : {"bash", "zsh", "fish"}) {
        std::string path = prefix + (std::string(shell) == "bash"  ? "/share/bash-completion/completions/ralph"
                                     : std::string(shell) == "zsh" ? "/share/zsh/site-functions/_ralph"
                                                                   : "/share/fish/vendor_completions.d/ralph.fish");
        ASSERT_TRUE(PathExists(path)) << path;
        EXPECT_EQ(ReadFile(path), CompletionScript(shell)) << path;
    }
}

}  // namespace
}  // namespace ralph::test
