// The daemon and the server tell the truth (issue 10, items 1, 3 and 5), end to end through the
// real ralph, ralphd, opencode 1.18.33 and the scripted model: `ralph daemon stop` and `ralph
// server stop` return only once what they stopped is gone; a server stopped or restarted by the
// user mid-iteration interrupts the iteration instead of failing it; `ralph daemon reload` and
// SIGHUP pick up a fixed ralphd.conf, and name what they cannot apply.
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <csignal>
#include <map>
#include <netinet/in.h>
#include <set>
#include <sys/socket.h>
#include <unistd.h>

namespace ralph::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

int64_t IntOf(const json::value& v) { return v.is_int64() ? v.as_int64() : 0; }

/// True when something accepts connections on 127.0.0.1:port.
bool PortAnswers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool answers = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    return answers;
}

/// Main requests the scripted model has received (each is the start of one opencode turn).
int ModelTurns(const E2EEnv& env)
{
    std::string log = ReadFile(env.model->log_path);
    int turns = 0;
    for (std::size_t at = 0; (at = log.find("\"behaviour\":\"textonly\"", at)) != std::string::npos; ++at) ++turns;
    return turns;
}

std::vector<std::string> Outcomes(const json::object& run)
{
    std::vector<std::string> out;
    for (const auto& it : run.at("iterations").as_array()) out.emplace_back(it.at("outcome").as_string());
    return out;
}

json::object RunWithIterations(const E2EEnv& env, int64_t id)
{
    json::object reply = env.Call("run.get", json::object{{"run", id}});
    EXPECT_TRUE(reply.contains("result")) << json::serialize(reply);
    return reply.contains("result") ? reply["result"].as_object() : json::object{};
}

// ---- item 1: stop returns once it is true --------------------------------------------------------

TEST(E2ETruthDaemon, DaemonStopReturnsOnceItsLockIsFreeSoAnImmediateStartWorks)
{
    E2EEnv env;
    // Autostarted as a user would, with the server running: stopping it takes ralphd a while.
    auto started = env.Ralph({"server", "start"});
    ASSERT_EQ(started.exit_code, 0) << started.err;
    json::value info = env.RalphJson({"daemon", "status"});
    pid_t old_pid = static_cast<pid_t>(IntOf(info.at("pid")));
    ASSERT_GT(old_pid, 0);

    auto stop = env.Ralph({"daemon", "stop"});
    ASSERT_EQ(stop.exit_code, 0) << stop.err;
    EXPECT_NE(stop.out.find("ralphd stopped (pid " + std::to_string(old_pid) + ")"), std::string::npos) << stop.out;
    EXPECT_FALSE(ProcessAlive(old_pid)) << "ralph daemon stop returned while ralphd " << old_pid << " still runs";
    // At once: a new ralphd takes the lock (StartDaemon fails the test on "already running").
    env.StartDaemon();
    ASSERT_TRUE(ProcessAlive(env.daemon_pid())) << env.DaemonStderr();
    started = env.Ralph({"server", "start"});
    ASSERT_EQ(started.exit_code, 0) << started.err;

    // And at once again, through a command that autostarts.
    stop = env.Ralph({"daemon", "stop"});
    ASSERT_EQ(stop.exit_code, 0) << stop.err;
    EXPECT_FALSE(ProcessAlive(env.daemon_pid()));
    auto status = env.Ralph({"--json", "server", "status"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    json::value after = env.RalphJson({"daemon", "status"});
    EXPECT_NE(IntOf(after.at("pid")), env.daemon_pid());
}

TEST(E2ETruthDaemon, ServerStopReturnsOnceItsProcessesAreGoneAndItsPortIsClosed)
{
    E2EEnv env;
    env.StartDaemon();
    json::value server = env.RalphJson({"server", "start"});
    pid_t pid = static_cast<pid_t>(IntOf(server.at("pid")));
    int port = static_cast<int>(IntOf(server.at("port")));
    ASSERT_GT(pid, 0) << json::serialize(server);
    ASSERT_GT(port, 0) << json::serialize(server);
    ASSERT_TRUE(PortAnswers(port));

    auto stop = env.Ralph({"server", "stop"});
    ASSERT_EQ(stop.exit_code, 0) << stop.err;
    EXPECT_FALSE(ProcessAlive(pid)) << "ralph server stop returned while opencode " << pid << " still runs";
    EXPECT_FALSE(PortAnswers(port)) << "ralph server stop returned while port " << port << " still answers";
    EXPECT_EQ(env.RalphJson({"server", "status"}).at("state"), "stopped");
}

// ---- item 3: the user's server stop or restart interrupts, never fails ----------------------------

TEST(E2ETruthDaemon, ServerStopMidIterationInterruptsItAndLeavesProgressAlone)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::string task = env.AddTask(project, "long", "SLOW:60000 TEXTONLY\n");
    WriteFile(task + "/progress.txt", "# progress\nwritten by the agent\n");
    json::value started = env.RalphJson({"run", "long", "-n", "5"}, project);
    int64_t id = IntOf(started.at("id"));
    ASSERT_GT(id, 0);
    // The model is answering iteration 1 (for a minute): stop the server under it.
    ASSERT_TRUE(WaitFor([&] { return ModelTurns(env) >= 1; }, 90s)) << env.DaemonStderr();
    WriteFile(task + "/prompt.md", "PROMISE\n");  // what iteration 2 will do
    auto stop = env.Ralph({"server", "stop"});
    ASSERT_EQ(stop.exit_code, 0) << stop.err;

    json::object run = env.WaitRunEnd(id);
    run = RunWithIterations(env, id);
    EXPECT_EQ(run["status"], "completed") << json::serialize(run) << env.DaemonStderr();
    EXPECT_EQ(Outcomes(run), (std::vector<std::string>{"interrupted", "complete"})) << json::serialize(run);
    EXPECT_EQ(ReadFile(task + "/progress.txt"), "# progress\nwritten by the agent\n");
}

TEST(E2ETruthDaemon, ServerRestartsDuringIterationsNeverCountAsFailures)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::string task = env.AddTask(project, "long", "SLOW:60000 TEXTONLY\n");
    WriteFile(task + "/progress.txt", "before\n");
    // Three restarts in a row: as errors they would end the run at max_consecutive_failures (3).
    json::value started = env.RalphJson({"run", "long", "-n", "10"}, project);
    int64_t id = IntOf(started.at("id"));
    ASSERT_GT(id, 0);
    for (int turn = 1; turn <= 3; ++turn) {
        ASSERT_TRUE(WaitFor([&] { return ModelTurns(env) >= turn; }, 90s)) << "turn " << turn << env.DaemonStderr();
        if (turn == 3) WriteFile(task + "/prompt.md", "PROMISE\n");
        auto restart = env.Ralph({"server", "restart"});
        ASSERT_EQ(restart.exit_code, 0) << restart.err;
    }
    json::object run = env.WaitRunEnd(id);
    run = RunWithIterations(env, id);
    EXPECT_EQ(run["status"], "completed") << json::serialize(run) << env.DaemonStderr();
    EXPECT_EQ(Outcomes(run), (std::vector<std::string>{"interrupted", "interrupted", "interrupted", "complete"}))
        << json::serialize(run);
    for (const auto& it : run.at("iterations").as_array()) {
        if (it.at("outcome") != "interrupted") continue;
        EXPECT_NE(std::string(it.at("error").as_string()).find("opencode server"), std::string::npos)
            << json::serialize(it);
    }
    EXPECT_EQ(ReadFile(task + "/progress.txt"), "before\n");
}

// ---- item 5: reload picks up a fixed configuration ------------------------------------------------

/// An environment whose ralphd cannot find opencode: no RALPH_OPENCODE, and a PATH without it.
void WithoutOpencode(E2EEnv& env)
{
    env.env["RALPH_OPENCODE"] = "";
    env.env["PATH"] = "/usr/bin:/bin";
}

void ExpectMissingOpencodeNamesTheFix(E2EEnv& env)
{
    auto r = env.Ralph({"server", "start"});
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("opencode not found"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("server.opencode"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("ralph daemon reload"), std::string::npos) << r.err;
}

TEST(E2ETruthDaemon, ReloadPicksUpAChangedOpencodeAndARunWorksRightAfter)
{
    E2EEnv env;
    WithoutOpencode(env);
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "quick", "PROMISE\n");
    ExpectMissingOpencodeNamesTheFix(env);

    WriteFile(env.config_path, ReadFile(env.config_path) + "opencode = " + OpencodeBinary() + "\n");
    auto reload = env.Ralph({"daemon", "reload"});
    ASSERT_EQ(reload.exit_code, 0) << reload.err;
    EXPECT_NE(reload.out.find("applied: server.opencode"), std::string::npos) << reload.out;
    EXPECT_EQ(reload.out.find("needs a restart"), std::string::npos) << reload.out;

    // The server was `fatal` (no opencode): a run right after the reload starts it and completes.
    auto run = env.Ralph({"run", "quick", "-f"}, project);
    EXPECT_EQ(run.exit_code, 0) << run.out << run.err << env.DaemonStderr();
    EXPECT_EQ(env.RalphJson({"server", "status"}).at("state"), "running");
}

TEST(E2ETruthDaemon, SighupReloadsLikeTheCommand)
{
    E2EEnv env;
    WithoutOpencode(env);
    env.StartDaemon();
    ExpectMissingOpencodeNamesTheFix(env);

    WriteFile(env.config_path, ReadFile(env.config_path) + "opencode = " + OpencodeBinary() + "\n");
    ASSERT_EQ(kill(env.daemon_pid(), SIGHUP), 0);
    ASSERT_TRUE(WaitFor([&] { return env.DaemonStderr().find("reloaded ") != std::string::npos; }, 15s))
        << env.DaemonStderr();
    EXPECT_NE(env.DaemonStderr().find("applied server.opencode"), std::string::npos) << env.DaemonStderr();
    EXPECT_TRUE(ProcessAlive(env.daemon_pid()));
    auto start = env.Ralph({"server", "start"});
    EXPECT_EQ(start.exit_code, 0) << start.err;
}

TEST(FunctionalTruthDaemon, ReloadNamesTheKeysThatNeedARestartAndRefusesABadFile)
{
    TestEnv env;
    env.env["RALPH_RUN_MAX_ITERATIONS"] = "7";  // ralphd's own environment wins over the file
    // Ports here are config values only: no server starts in this test.
    env.WriteConfig("[server]\nport = 15990\n");
    env.StartDaemon();

    env.WriteConfig(
        "[server]\nport = 15991\nmode = external\nurl = http://127.0.0.1:15992\n"
        "[run]\niteration_timeout = 5m\nmax_iterations = 3\n");
    auto r = env.Ralph({"--json", "daemon", "reload"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json::value reply = json::parse(r.out);
    std::set<std::string> applied;
    for (const auto& key : reply.at("applied").as_array()) applied.insert(std::string(key.as_string()));
    EXPECT_EQ(applied, (std::set<std::string>{"server.port", "run.iteration_timeout"})) << r.out;
    std::map<std::string, std::string> restart;
    for (const auto& item : reply.at("needs_restart").as_array())
        restart[std::string(item.at("key").as_string())] = item.at("why").as_string().c_str();
    EXPECT_EQ(restart.size(), 3u) << r.out;
    EXPECT_NE(restart["server.mode"].find("only when ralphd starts"), std::string::npos) << r.out;
    EXPECT_TRUE(restart.count("server.url")) << r.out;
    EXPECT_NE(restart["run.max_iterations"].find("RALPH_RUN_MAX_ITERATIONS"), std::string::npos) << r.out;
    // Not applied: the server stays managed.
    EXPECT_EQ(env.Call("server.status")["result"].at("mode"), "managed");

    // The text form names the key and how to restart; the same file again changes nothing.
    env.WriteConfig("[server]\nport = 15991\nmode = external\nurl = http://127.0.0.1:15993\n"
                    "[run]\niteration_timeout = 5m\nmax_iterations = 3\n");
    auto text = env.Ralph({"daemon", "reload"});
    ASSERT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("needs a restart: server.url"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("ralph daemon stop"), std::string::npos) << text.out;
    text = env.Ralph({"daemon", "reload"});
    ASSERT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("no key changed"), std::string::npos) << text.out;

    // A bad file is refused with the key and changes nothing.
    env.WriteConfig("[run]\niteration_timeout = soon\n");
    auto bad = env.Ralph({"daemon", "reload"});
    EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
    EXPECT_NE(bad.err.find("run.iteration_timeout"), std::string::npos) << bad.err;
    EXPECT_NE(bad.err.find("nothing was changed"), std::string::npos) << bad.err;
    EXPECT_TRUE(ProcessAlive(env.daemon_pid()));
    // Putting it right applies again, compared with the file last read successfully.
    env.WriteConfig("[server]\nport = 15991\nmode = external\nurl = http://127.0.0.1:15993\n"
                    "[run]\niteration_timeout = 5m\nmax_iterations = 3\n");
    auto fixed = env.Ralph({"daemon", "reload"});
    ASSERT_EQ(fixed.exit_code, 0) << fixed.err;
    EXPECT_NE(fixed.out.find("no key changed"), std::string::npos) << fixed.out;
}

}  // namespace
}  // namespace ralph::test
