// SPEC §10 hooks, end to end through the real ralph, ralphd, opencode 1.18.33 and the scripted
// model: on_iteration_end and on_run_end get the documented environment and their output lands in
// the run's log; a failing or hanging hook changes nothing in the run, and a hanging one does not
// outlive ralphd.
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace ralph::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

/// KEY=VALUE lines as a map.
std::map<std::string, std::string> EnvFile(const std::string& text)
{
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (auto eq = line.find('='); eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
    return out;
}

TEST(E2EHooks, HooksGetTheDocumentedEnvironmentAndTheirOutputIsLogged)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::string task_dir = env.AddTask(project, "t", "TEXTONLY\n");
    const std::string out = env.dir + "/hooks";
    WriteFile(task_dir + "/ralph.ini",
              "[run]\nmax_iterations = 2\n[hooks]\n"
              "on_iteration_end = mkdir -p " + out + " && env | grep ^RALPH_ | sort > " + out + "/iteration-$RALPH_ITERATION.env\n"
              "on_run_end = env | grep ^RALPH_ | sort > " + out + "/end.env.tmp && mv " + out + "/end.env.tmp " + out +
              "/end.env && echo said-by-the-hook\n");
    json::value started = env.RalphJson({"run", "t"}, project);
    const int64_t id = started.at("id").as_int64();
    json::object run = env.WaitRunEnd(id);
    EXPECT_EQ(run.at("reason"), "max_iterations");
    ASSERT_TRUE(WaitFor([&] { return PathExists(out + "/end.env"); }, 60s));
    ASSERT_TRUE(WaitFor([&] { return PathExists(out + "/iteration-2.env"); }, 60s));

    auto first = EnvFile(ReadFile(out + "/iteration-1.env"));
    for (const char* name : {"RALPH_RUN_ID", "RALPH_TASK", "RALPH_PROJECT", "RALPH_WORKTREE", "RALPH_BRANCH",
                             "RALPH_STATUS", "RALPH_REASON", "RALPH_ITERATION", "RALPH_OUTCOME", "RALPH_SESSION_ID",
                             "RALPH_TOKENS", "RALPH_COST"})
        EXPECT_TRUE(first.count(name)) << name << " missing from\n" << ReadFile(out + "/iteration-1.env");
    EXPECT_EQ(first["RALPH_RUN_ID"], std::to_string(id));
    EXPECT_EQ(first["RALPH_TASK"], "t");
    EXPECT_EQ(first["RALPH_PROJECT"], project);
    EXPECT_EQ(first["RALPH_ITERATION"], "1");
    EXPECT_EQ(first["RALPH_OUTCOME"], "continue");
    EXPECT_EQ(first["RALPH_SESSION_ID"].rfind("ses_", 0), 0u) << first["RALPH_SESSION_ID"];
    EXPECT_GT(std::stoll(first["RALPH_TOKENS"]), 0);
    EXPECT_EQ(first["RALPH_WORKTREE"], "");

    auto end = EnvFile(ReadFile(out + "/end.env"));
    EXPECT_EQ(end["RALPH_STATUS"], "stopped");
    EXPECT_EQ(end["RALPH_REASON"], "max_iterations");
    EXPECT_EQ(end["RALPH_ITERATION"], "2");
    // Their outcome and output are in the run's log.
    ASSERT_TRUE(WaitFor([&] { return env.Ralph({"logs", std::to_string(id)}, project).out.find("said-by-the-hook") !=
                                     std::string::npos; },
                        30s))
        << env.Ralph({"logs", std::to_string(id), "--json"}, project).out;
    auto logs = env.Ralph({"logs", std::to_string(id)}, project);
    EXPECT_NE(logs.out.find("hook on_iteration_end exited with status 0"), std::string::npos) << logs.out;
    EXPECT_NE(logs.out.find("hook on_run_end exited with status 0"), std::string::npos) << logs.out;
}

TEST(E2EHooks, FailingAndHangingHooksChangeNothingAndDoNotOutliveRalphd)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::string task_dir = env.AddTask(project, "t", "TEXTONLY\n");
    const std::string pids = env.dir + "/hook.pids";
    WriteFile(task_dir + "/ralph.ini",
              "[run]\nmax_iterations = 3\n[hooks]\n"
              "on_iteration_end = echo $$ >> " + pids + "; sleep 300\n"
              "on_run_end = echo failing on purpose; exit 3\n");
    json::value started = env.RalphJson({"run", "t"}, project);
    const int64_t id = started.at("id").as_int64();
    // Each iteration's hook hangs for 5 minutes: the loop does not wait for it.
    json::object run = env.WaitRunEnd(id, 180s);
    EXPECT_EQ(run.at("status"), "stopped") << json::serialize(run);
    EXPECT_EQ(run.at("reason"), "max_iterations");
    EXPECT_EQ(run.at("iterations").as_array().size(), 3u);
    ASSERT_TRUE(WaitFor([&] { return env.Ralph({"logs", std::to_string(id)}, project).out.find(
                                         "hook on_run_end exited with status 3") != std::string::npos; },
                        30s))
        << env.Ralph({"logs", std::to_string(id)}, project).out;
    ASSERT_TRUE(WaitFor([&] { return EnvFile(ReadFile(pids)).empty() && !ReadFile(pids).empty(); }, 30s));
    std::vector<pid_t> hanging;
    std::istringstream in(ReadFile(pids));
    for (pid_t p; in >> p;) hanging.push_back(p);
    ASSERT_FALSE(hanging.empty());
    EXPECT_TRUE(ProcessAlive(hanging.back()));  // still hanging while ralphd runs
    // ralphd stops promptly and takes the hanging hooks with it.
    auto stop = env.Ralph({"daemon", "stop"});
    EXPECT_EQ(stop.exit_code, 0) << stop.out << stop.err;
    for (pid_t p : hanging) EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(p); }, 10s)) << "hook shell " << p;
}

TEST(E2EHooks, NotifyDesktopSendsANotificationWhenARunEndsInAGraphicalSession)
{
    E2EEnv env;
    // A graphical session, and a notify-send that writes down what it was asked to show.
    const std::string bin = env.dir + "/bin", shown = env.dir + "/notified";
    std::filesystem::create_directories(bin);
    WriteFile(bin + "/notify-send", "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + shown + "\n");
    std::filesystem::permissions(bin + "/notify-send", std::filesystem::perms::owner_all);
    env.env["PATH"] = bin + ":" + std::string(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin");
    env.env["DISPLAY"] = ":99";
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::string task_dir = env.AddTask(project, "t", "TEXTONLY\n");
    WriteFile(task_dir + "/ralph.ini", "[run]\nmax_iterations = 1\n[hooks]\nnotify = desktop\n");
    json::value started = env.RalphJson({"run", "t"}, project);
    env.WaitRunEnd(started.at("id").as_int64());
    ASSERT_TRUE(WaitFor([&] { return !ReadFile(shown).empty(); }, 30s));
    EXPECT_NE(ReadFile(shown).find("ralph: t stopped"), std::string::npos) << ReadFile(shown);
    EXPECT_NE(ReadFile(shown).find("(max_iterations) after 1 iterations"), std::string::npos) << ReadFile(shown);
}

}  // namespace
}  // namespace ralph::test
