// The command line end to end, where it is about the real opencode 1.18.33: what `ralph run -f`
// says while the server starts, how `ralph status` counts servers ralph does not manage, and
// what `ralph attach` with no argument opens.
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

namespace ralph::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(E2ECli, RunFollowSaysTheServerIsStartingAndCountsOneIteration)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "one", "TEXTONLY\n");
    ASSERT_EQ(env.RalphJson({"server", "status"}).at("state"), "stopped");

    // The server is stopped: the 5-9 s before the first iteration are not silent.
    auto r = env.Ralph({"run", "one", "-n", "1", "-f"}, project);
    EXPECT_EQ(r.exit_code, 4) << r.out << r.err << env.DaemonStderr();  // stopped at max_iterations
    auto starting = r.out.find("starting the opencode server");
    auto first_iteration = r.out.find("iteration started");
    ASSERT_NE(starting, std::string::npos) << r.out;
    ASSERT_NE(first_iteration, std::string::npos) << r.out;
    EXPECT_LT(starting, first_iteration) << r.out;
    EXPECT_TRUE(Contains(r.out, "up to 1 iteration\n")) << r.out;
    EXPECT_FALSE(Contains(r.out, "1 iterations")) << r.out;

    // Now it runs: nothing to say about starting it.
    r = env.Ralph({"run", "one", "-n", "1", "-f"}, project);
    EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
    EXPECT_FALSE(Contains(r.out, "starting the opencode server")) << r.out;

    // Without -f the reply says the limit in the singular too.
    r = env.Ralph({"run", "one", "-n", "1"}, project);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(Contains(r.out, "up to 1 iteration\n")) << r.out;
    json::value run = env.RalphJson({"show", "one"}, project);
    ASSERT_TRUE(run.is_object() && run.at("id").is_int64()) << run;
    env.WaitRunEnd(run.at("id").as_int64());
}

TEST(E2ECli, StatusCountsUnmanagedServersInOneLineAndServerStatusListsThem)
{
    E2EEnv env;
    // An opencode server started by hand, on a port of this test's own block outside ralph's range.
    int port = env.port_base + 45;
    auto other_env = env.env;
    other_env["OPENCODE_SERVER_PASSWORD"] = "handmade";
    other_env["HOME"] = env.dir + "/other-home";
    other_env["XDG_DATA_HOME"] = env.dir + "/other-home/data";
    fs::create_directories(env.dir + "/other-home");
    std::string out_path = env.dir + "/other.out";
    pid_t other = SpawnProgram({OpencodeBinary(), "serve", "--hostname", "127.0.0.1", "--port", std::to_string(port)},
                               other_env, out_path, env.dir + "/other.err");
    ASSERT_TRUE(WaitFor([&] { return Contains(ReadFile(out_path), "listening"); }, 30s)) << ReadFile(env.dir + "/other.err");

    env.StartDaemon();
    std::string pid_text = "pid " + std::to_string(other);
    // ralph's scan may also see other tests' servers: the count is at least one, the details absent.
    auto r = env.Ralph({"status"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(Contains(r.out, " not managed by ralph; 'ralph server status' lists them\n")) << r.out;
    EXPECT_FALSE(Contains(r.out, pid_text)) << r.out;
    r = env.Ralph({"server", "status"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(Contains(r.out, pid_text + "  port " + std::to_string(port) + "  (not managed by ralph)")) << r.out;

    kill(other, SIGTERM);
    EXPECT_NE(WaitExit(other, 10s), -1);
}

TEST(E2ECli, AttachWithNoArgumentSaysItOpensTheHomeScreenAndWhereTheSessionListIs)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    fs::create_directories(project + "/src");
    auto r = env.Ralph({"attach", "--print"}, project + "/src");
    ASSERT_EQ(r.exit_code, 0) << r.err << env.DaemonStderr();
    // No --session: opencode opens its home screen, and ralph says so instead of promising a list.
    EXPECT_FALSE(Contains(r.out, "--session")) << r.out;
    EXPECT_TRUE(Contains(r.out, " --dir " + project + "\n")) << r.out;
    EXPECT_TRUE(Contains(r.err, "opening opencode's home screen in " + project)) << r.err;
    EXPECT_TRUE(Contains(r.err, "/sessions")) << r.err;
    json::value target = env.RalphJson({"attach"}, project);
    EXPECT_TRUE(target.at("session").is_null());
    ASSERT_TRUE(target.at("note").is_string()) << target;
    EXPECT_TRUE(Contains(std::string(target.at("note").as_string()), "home screen")) << target;
    // The help no longer promises a session list it cannot open.
    r = env.Ralph({"attach", "--help"});
    EXPECT_TRUE(Contains(r.out, "home screen")) << r.out;
}

}  // namespace
}  // namespace ralph::test
