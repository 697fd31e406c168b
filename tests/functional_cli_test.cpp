// The command line as a user meets it, through the real ralph (and the real ralphd where the
// daemon answers): group help, "did you mean", option values, per-command help, durations, the
// message when the daemon is down, and the layout of `ralph status`.
#include "common/duration.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace ralph::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(FunctionalCli, GroupNameAloneListsItsCommands)
{
    TestEnv env;
    for (std::string group : {"server", "daemon"}) {
        auto r = env.Ralph({group});
        EXPECT_EQ(r.exit_code, 2) << group;
        EXPECT_FALSE(Contains(r.err, "unknown command")) << r.err;
        EXPECT_TRUE(Contains(r.err, "ralph " + group + " COMMAND")) << r.err;
        EXPECT_TRUE(Contains(r.err, group + " status")) << r.err;
        EXPECT_TRUE(Contains(r.err, group + " stop")) << r.err;

        r = env.Ralph({group, "--help"});
        EXPECT_EQ(r.exit_code, 0) << group;
        EXPECT_TRUE(Contains(r.out, group + " status")) << r.out;
        EXPECT_TRUE(Contains(r.out, group + " stop")) << r.out;
        EXPECT_EQ(r.err, "");
    }
    EXPECT_FALSE(PathExists(env.socket));  // help never starts the daemon
}

TEST(FunctionalCli, MistypedCommandsGetDidYouMean)
{
    TestEnv env;
    auto r = env.Ralph({"statsu"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_TRUE(Contains(r.err, "unknown command 'statsu'; did you mean 'ralph status'?")) << r.err;

    r = env.Ralph({"server", "stat"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_TRUE(Contains(r.err, "unknown command 'server stat'; did you mean 'ralph server status'?")) << r.err;
    EXPECT_TRUE(Contains(r.err, "server restart")) << "the group's commands follow: " << r.err;

    r = env.Ralph({"sevrer", "status"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_TRUE(Contains(r.err, "did you mean 'ralph server status'?")) << r.err;
    r = env.Ralph({"sevrer", "stauts"});  // both words mistyped
    EXPECT_TRUE(Contains(r.err, "did you mean 'ralph server status'?")) << r.err;

    // Nothing close: no guess, only where the list is.
    r = env.Ralph({"frobnicate"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_FALSE(Contains(r.err, "did you mean")) << r.err;
    EXPECT_TRUE(Contains(r.err, "ralph --help")) << r.err;
    EXPECT_FALSE(PathExists(env.socket));
}

TEST(FunctionalCli, BadOptionValuesAreUsageErrorsNamingTheOptionAsTyped)
{
    TestEnv env;
    struct Case {
        std::vector<std::string> args;
        std::string named;
    };
    const std::vector<Case> cases = {
        {{"run", "docs", "-n", "0"}, "-n '0': expected a whole number from 1 to 1000000"},
        {{"run", "docs", "-n", "abc"}, "-n 'abc': expected a whole number"},
        {{"run", "docs", "-n5x"}, "-n '5x'"},
        {{"run", "docs", "--max-iterations=-3"}, "--max-iterations '-3'"},
        {{"run", "docs", "--iteration-timeout", "5x"}, "--iteration-timeout '5x': expected a duration"},
        {{"run", "docs", "--iteration-timeout", "0"}, "--iteration-timeout '0'"},
        {{"logs", "docs", "--iteration", "first"}, "--iteration 'first'"},
    };
    for (const Case& c : cases) {
        auto r = env.Ralph(c.args);
        EXPECT_EQ(r.exit_code, 2) << c.args.back() << ": " << r.err;
        EXPECT_TRUE(Contains(r.err, c.named)) << r.err;
        EXPECT_FALSE(Contains(r.err, "invalid params")) << r.err;
        EXPECT_FALSE(Contains(r.err, "max_iterations")) << r.err;
    }
    auto r = env.Ralph({"run", "docs", "--iteration-timeout", "5x"});
    EXPECT_TRUE(Contains(r.err, "ms, s, m, h or d")) << "the units are listed: " << r.err;
    EXPECT_TRUE(Contains(r.err, "bare number is seconds")) << r.err;
    // Refused before anything was asked of a daemon: none was started.
    EXPECT_FALSE(PathExists(env.socket));
}

TEST(FunctionalCli, EveryCommandsHelpListsItsOptionsWithDefaults)
{
    TestEnv env;
    auto r = env.Ralph({"run", "--help"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* expected :
         {"Options:", "-n, --max-iterations N", "(default: [run] max_iterations, else 10)", "--model P/M",
          "--agent A", "--promise TEXT", "(default: [run] completion_promise, else COMPLETE)",
          "--iteration-timeout DUR", "(default: [run] iteration_timeout, else 30m)", "-f, --follow"})
        EXPECT_TRUE(Contains(r.out, expected)) << expected << " in:\n" << r.out;

    r = env.Ralph({"status", "--help"});
    ASSERT_EQ(r.exit_code, 0);
    EXPECT_TRUE(Contains(r.out, "-a, --all")) << r.out;
    r = env.Ralph({"logs", "--help"});
    ASSERT_EQ(r.exit_code, 0);
    EXPECT_TRUE(Contains(r.out, "--iteration N")) << r.out;
    EXPECT_TRUE(Contains(r.out, "(default: every iteration)")) << r.out;
    r = env.Ralph({"attach", "--help"});
    ASSERT_EQ(r.exit_code, 0);
    EXPECT_TRUE(Contains(r.out, "-s, --session ID")) << r.out;
    EXPECT_TRUE(Contains(r.out, "--print")) << r.out;
    r = env.Ralph({"stop", "--help"});
    ASSERT_EQ(r.exit_code, 0);
    EXPECT_TRUE(Contains(r.out, "--now")) << r.out;
    // The top-level help says where the options are and what a duration is.
    r = env.Ralph({"--help"});
    EXPECT_TRUE(Contains(r.out, "'ralph COMMAND --help'")) << r.out;
    EXPECT_TRUE(Contains(r.out, "a bare number is seconds")) << r.out;
}

TEST(FunctionalCli, DurationsAsSpecSection13Says)
{
    EXPECT_EQ(ParseDuration("500ms"), Millis(500));
    EXPECT_EQ(ParseDuration("90s"), Millis(90'000));
    EXPECT_EQ(ParseDuration("15m"), Millis(900'000));
    EXPECT_EQ(ParseDuration("2h"), Millis(7'200'000));
    EXPECT_EQ(ParseDuration("1d"), Millis(86'400'000));
    EXPECT_EQ(ParseDuration("1h30m"), Millis(5'400'000));
    EXPECT_EQ(ParseDuration("1d2h3m4s5ms"), Millis(93'784'005));
    EXPECT_EQ(ParseDuration("90"), Millis(90'000));  // a bare number is seconds
    for (const char* bad : {"", "h", "5x", "1.5h", "5 s", "-5s", "1h5", "s5", "99999999999d", "999999999999h"})
        EXPECT_FALSE(ParseDuration(bad)) << "'" << bad << "'";
}

TEST(FunctionalCli, ABadDurationInTheConfigListsTheUnits)
{
    TestEnv env;
    env.WriteConfig("[run]\niteration_timeout = 5x\n");
    auto r = RunProgram({RALPHD_PATH}, env.env, "", std::chrono::seconds(20));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(Contains(r.err, "iteration_timeout")) << r.err;
    EXPECT_TRUE(Contains(r.err, "ms, s, m, h or d")) << r.err;
    EXPECT_TRUE(Contains(r.err, "1h30m")) << r.err;

    env.WriteConfig("[run]\niteration_timeout = 1h30m\n");
    env.StartDaemon();
    EXPECT_EQ(env.StopDaemon(), 0);
}

TEST(FunctionalCli, DaemonStatusWithTheDaemonDownSuggestsDaemonStart)
{
    TestEnv env;
    auto r = env.Ralph({"daemon", "status"});
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_TRUE(Contains(r.err, "ralph daemon start")) << r.err;
    EXPECT_TRUE(Contains(r.err, env.socket)) << r.err;
    EXPECT_FALSE(Contains(r.err, "no-autostart")) << "not given, so not mentioned: " << r.err;

    r = env.Ralph({"--no-autostart", "daemon", "status"});
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_TRUE(Contains(r.err, "ralph daemon start")) << r.err;
    EXPECT_TRUE(Contains(r.err, "--no-autostart")) << "given, so mentioned: " << r.err;
    EXPECT_FALSE(PathExists(env.socket));
}

/// How many lines of `text` hold both parts, the first before the second.
int RowsWith(const std::string& text, const std::string& first, const std::string& second)
{
    int rows = 0;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(start, end - start);
        auto a = line.find(first);
        if (a != std::string::npos && line.find(second, a + first.size()) != std::string::npos) ++rows;
        start = end + 1;
    }
    return rows;
}

/// A project directory with tasks/<task>/prd.json broken, so every run of it fails at once.
std::string BrokenTaskProject(const TestEnv& env, const std::string& name, const std::string& task)
{
    std::string project = env.dir + "/" + name;
    fs::create_directories(project + "/tasks/" + task);
    WriteFile(project + "/tasks/" + task + "/prd.json", "{ not json");
    return project;
}

TEST(FunctionalCli, StatusNamesProjectsAndCountsOlderRuns)
{
    TestEnv env;
    env.StartDaemon();
    std::string alpha = BrokenTaskProject(env, "alpha", "docs");
    std::string beta = BrokenTaskProject(env, "beta", "docs");
    // 12 runs in each project: 24 runs, more than the 20 `ralph status` lists.
    for (int i = 0; i < 12; ++i)
        for (const std::string& project : {alpha, beta}) {
            auto r = env.Ralph({"--json", "run", project + "/tasks/docs"});
            ASSERT_NE(r.out.find("\"id\""), std::string::npos) << r.out << r.err << env.DaemonStderr();
        }

    auto r = env.Ralph({"status"}, alpha);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(Contains(r.out, "RUN  PROJECT")) << r.out;
    // 20 rows, each naming its project beside the task.
    EXPECT_EQ(RowsWith(r.out, alpha + " ", " docs "), 10) << r.out;
    EXPECT_EQ(RowsWith(r.out, beta + " ", " docs "), 10) << r.out;
    EXPECT_TRUE(Contains(r.out, "4 older runs not shown; 'ralph status --all' lists every run")) << r.out;

    json::value listed = json::parse(env.Ralph({"--json", "status"}, alpha).out);
    EXPECT_EQ(listed.at("runs").as_array().size(), 20u);
    EXPECT_EQ(listed.at("older_runs"), 4);

    // --all: every run, nothing older left to mention.
    r = env.Ralph({"status", "--all"}, alpha);
    ASSERT_EQ(r.exit_code, 0);
    EXPECT_FALSE(Contains(r.out, "older run")) << r.out;
    EXPECT_TRUE(Contains(r.out, "\n24  ")) << r.out;

    // One task's runs: one project, so no PROJECT column; 12 runs fit.
    r = env.Ralph({"status", alpha + "/tasks/docs"}, alpha);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(Contains(r.out, "RUN  TASK")) << r.out;
    EXPECT_FALSE(Contains(r.out, "PROJECT")) << r.out;
    EXPECT_FALSE(Contains(r.out, beta)) << r.out;
    EXPECT_FALSE(Contains(r.out, "older run")) << r.out;
}

}  // namespace
}  // namespace ralph::test
