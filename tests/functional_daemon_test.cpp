// The real ralphd on a private socket and state directory, driven by the real ralph and by raw
// socket writes: single instance, socket hygiene, malformed input, shutdown and autostart.
#include "common/rpc_client.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <cstring>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace ralph::test {
namespace {

namespace json = boost::json;

/// Sends raw bytes and reads what comes back until the daemon closes or `timeout` passes.
std::string SendRaw(const std::string& path, const std::string& bytes,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(1500))
{
    RpcClient c(path);
    c.SendLine(bytes);
    std::string out;
    try {
        while (auto line = c.ReadLine(timeout)) out += *line + "\n";
    } catch (const ConnectionError&) {
    }
    return out;
}

json::value ParseReply(const std::string& line) { return json::parse(line); }

bool PingOk(const TestEnv& env)
{
    try {
        return env.Call("daemon.ping").at("result") == "pong";
    } catch (const ConnectionError&) {
        return false;
    }
}

TEST(FunctionalDaemon, PingAndInfo)
{
    TestEnv env;
    pid_t pid = env.StartDaemon();
    EXPECT_TRUE(PingOk(env));
    auto info = env.Call("daemon.info").at("result").as_object();
    EXPECT_EQ(info.at("pid").as_int64(), pid);
    EXPECT_EQ(info.at("socket").as_string(), env.socket);
    EXPECT_EQ(info.at("database").as_string(), env.state_dir + "/ralph.db");
    EXPECT_EQ(info.at("config").as_string(), env.config_path);
    EXPECT_EQ(info.at("version").as_string(), RALPH_VERSION);

    auto r = env.Ralph({"daemon", "status"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("pid:      " + std::to_string(pid)), std::string::npos) << r.out;
    r = env.Ralph({"--json", "daemon", "status"});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(json::parse(r.out).at("pid").as_int64(), pid);
    // Global options after the command too.
    r = env.Ralph({"daemon", "status", "--json"});
    EXPECT_EQ(json::parse(r.out).at("pid").as_int64(), pid);
}

TEST(FunctionalDaemon, SecondInstanceIsRefusedAndTheFirstStillAnswers)
{
    TestEnv env;
    pid_t first = env.StartDaemon();
    auto r = RunProgram({RALPHD_PATH}, env.env);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("ralphd is already running (pid " + std::to_string(first) + ", socket " + env.socket + ")"),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(PingOk(env));
}

TEST(FunctionalDaemon, KillNineThenRestartReplacesTheStaleSocket)
{
    TestEnv env;
    env.StartDaemon();
    env.KillDaemon();
    EXPECT_TRUE(PathExists(env.socket));  // left behind by the killed daemon
    EXPECT_FALSE(PingOk(env));
    pid_t second = env.StartDaemon();
    EXPECT_TRUE(PingOk(env));
    EXPECT_EQ(env.Call("daemon.info").at("result").at("pid").as_int64(), second);
}

TEST(FunctionalDaemon, SocketDirectoryAndDatabaseModes)
{
    TestEnv env;
    env.StartDaemon();
    struct stat st {};
    ASSERT_EQ(stat(env.socket.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(stat((env.dir + "/run").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_EQ(stat((env.state_dir + "/ralph.db").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(stat(env.state_dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST(FunctionalDaemon, PeerOfAnotherUidIsClosedBeforeAnyRequest)
{
    if (getuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
    TestEnv env;
    env.StartDaemon();
    // Open the path up so that only the daemon's own uid check stands in the way.
    chmod(env.dir.c_str(), 0755);
    chmod((env.dir + "/run").c_str(), 0755);
    chmod(env.socket.c_str(), 0666);
    pid_t child = fork();
    if (child == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
        int fd = RawConnect(env.socket);
        if (fd < 0) _exit(11);
        std::string req = "{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":1}\n";
        send(fd, req.data(), req.size(), MSG_NOSIGNAL);
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        _exit(n <= 0 ? 0 : 12);  // closed without an answer
    }
    EXPECT_EQ(WaitExit(child, std::chrono::seconds(10)), 0);
    EXPECT_TRUE(PingOk(env));
    EXPECT_NE(env.DaemonStderr().find("refused a connection from uid 65534"), std::string::npos);
}

TEST(FunctionalDaemon, MalformedInputIsAnsweredPerSpecAndTheDaemonKeepsServing)
{
    TestEnv env;
    env.StartDaemon();
    struct Case {
        std::string input;
        int code;
    };
    std::vector<Case> cases = {
        {"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":", -32700},
        {"not json at all", -32700},
        {"{\"jsonrpc\":\"2.0\",\"method\":1,\"id\":1}", -32600},
        {"{\"jsonrpc\":\"1.0\",\"method\":\"daemon.ping\",\"id\":1}", -32600},
        {"{\"method\":\"daemon.ping\",\"id\":1}", -32600},
        {"[]", -32600},
        {"{\"jsonrpc\":\"2.0\",\"method\":\"no.such\",\"id\":1}", -32601},
        {"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"params\":{\"bogus\":1},\"id\":1}", -32602},
        {"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"params\":[1,2],\"id\":1}", -32602},
        {"\"just a string\"", -32600},
    };
    for (const Case& c : cases) {
        std::string out = SendRaw(env.socket, c.input + "\n", std::chrono::milliseconds(300));
        ASSERT_FALSE(out.empty()) << c.input;
        auto v = ParseReply(out.substr(0, out.find('\n')));
        EXPECT_EQ(v.at("error").at("code").as_int64(), c.code) << c.input << " -> " << out;
        EXPECT_TRUE(PingOk(env)) << "after " << c.input;
    }
    // A notification gets no reply; an all-notification batch neither; a mixed batch an array.
    EXPECT_EQ(SendRaw(env.socket, "{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\"}\n", std::chrono::milliseconds(300)), "");
    EXPECT_EQ(SendRaw(env.socket,
                      "[{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\"},{\"jsonrpc\":\"2.0\",\"method\":\"x\"}]\n",
                      std::chrono::milliseconds(300)),
              "");
    auto batch = ParseReply(SendRaw(env.socket,
                                    "[{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":1},1,"
                                    "{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\"}]\n",
                                    std::chrono::milliseconds(300)));
    ASSERT_TRUE(batch.is_array());
    EXPECT_EQ(batch.as_array().size(), 2u);
    EXPECT_EQ(batch.as_array()[0].at("result"), "pong");
    EXPECT_EQ(batch.as_array()[1].at("error").at("code").as_int64(), -32600);
    // Several requests on one connection, answered in order; CRLF tolerated.
    std::string two = SendRaw(env.socket,
                              "{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":1}\r\n"
                              "{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":2}\n",
                              std::chrono::milliseconds(300));
    EXPECT_NE(two.find("\"id\":1"), std::string::npos);
    EXPECT_NE(two.find("\"id\":2"), std::string::npos);
    EXPECT_TRUE(PingOk(env));
}

TEST(FunctionalDaemon, TwoMegabyteLineIsRejectedAndTheConnectionClosed)
{
    TestEnv env;
    env.StartDaemon();
    RpcClient other(env.socket);  // another client, connected throughout
    std::string huge = "{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"params\":{\"pad\":\"" +
                       std::string(2 << 20, 'x') + "\"},\"id\":1}\n";
    int fd = RawConnect(env.socket);
    ASSERT_GE(fd, 0);
    std::size_t sent = 0;
    while (sent < huge.size()) {
        ssize_t n = send(fd, huge.data() + sent, huge.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;  // the daemon may close before reading it all
        sent += static_cast<std::size_t>(n);
    }
    std::string got;
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
    }
    close(fd);
    ASSERT_FALSE(got.empty());
    auto v = ParseReply(got.substr(0, got.find('\n')));
    EXPECT_EQ(v.at("error").at("code").as_int64(), -32600);
    EXPECT_NE(std::string(v.at("error").at("message").as_string()).find("too large"), std::string::npos);
    EXPECT_EQ(other.Call("daemon.ping").at("result"), "pong");
    EXPECT_TRUE(PingOk(env));
}

TEST(FunctionalDaemon, IdleAndHalfLineClientsTimeOut)
{
    TestEnv env;
    env.StartDaemon({"--client-timeout", "300ms"});
    int silent = RawConnect(env.socket);
    int half = RawConnect(env.socket);
    ASSERT_GE(silent, 0);
    ASSERT_GE(half, 0);
    send(half, "{\"jsonrpc\":\"2.0\",", 17, MSG_NOSIGNAL);
    char buf[16];
    // Both are closed by the daemon (recv returns 0) while it keeps serving others.
    EXPECT_EQ(recv(silent, buf, sizeof buf, 0), 0);
    EXPECT_EQ(recv(half, buf, sizeof buf, 0), 0);
    close(silent);
    close(half);
    EXPECT_TRUE(PingOk(env));
}

TEST(FunctionalDaemon, ShutdownOverRpcRepliesThenLeavesNothingBehind)
{
    TestEnv env;
    pid_t pid = env.StartDaemon();
    auto reply = env.Call("daemon.shutdown");
    EXPECT_EQ(reply.at("result"), true);
    EXPECT_EQ(WaitExit(pid, std::chrono::seconds(30)), 0) << env.DaemonStderr();
    EXPECT_FALSE(PathExists(env.socket));
    EXPECT_FALSE(PathExists(env.socket + ".lock"));
}

TEST(FunctionalDaemon, SigtermLeavesNoSocketNoLockHolderAndExitsZero)
{
    TestEnv env;
    env.StartDaemon();
    EXPECT_EQ(env.StopDaemon(), 0) << env.DaemonStderr();
    EXPECT_FALSE(PathExists(env.socket));
    // Nobody holds the lock: a fresh daemon can start at once.
    int fd = open((env.socket + ".lock").c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd);
    unlink((env.socket + ".lock").c_str());
    env.StartDaemon();
    EXPECT_TRUE(PingOk(env));
}

TEST(FunctionalDaemon, RalphDaemonStopWaitsForTheExit)
{
    TestEnv env;
    pid_t pid = env.StartDaemon();
    auto r = env.Ralph({"daemon", "stop"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("ralphd stopped (pid " + std::to_string(pid) + ")"), std::string::npos) << r.out;
    EXPECT_EQ(WaitExit(pid, std::chrono::seconds(10)), 0);
    r = env.Ralph({"daemon", "stop"});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("not running"), std::string::npos);
}

TEST(FunctionalDaemon, UnreachableDaemonExitsThreeNamingTheSocket)
{
    TestEnv env;
    auto r = env.Ralph({"--no-autostart", "daemon", "status"});
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_NE(r.err.find(env.socket), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("ralphd"), std::string::npos) << r.err;
    EXPECT_FALSE(PathExists(env.socket));  // and nothing was started
}

TEST(FunctionalDaemon, UsageErrorsExitTwo)
{
    TestEnv env;
    EXPECT_EQ(env.Ralph({"frobnicate"}).exit_code, 2);
    EXPECT_EQ(env.Ralph({}).exit_code, 2);
    EXPECT_EQ(env.Ralph({"daemon", "status", "extra"}).exit_code, 2);
    auto r = env.Ralph({"--help"});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("daemon status"), std::string::npos);
    r = env.Ralph({"--version"});
    EXPECT_EQ(r.out, std::string("ralph ") + RALPH_VERSION + "\n");
    r = RunProgram({RALPHD_PATH, "--help"}, env.env);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("health_interval"), std::string::npos);
    EXPECT_NE(r.out.find("--socket"), std::string::npos);
}

TEST(FunctionalDaemon, BadConfigStopsStartupWithTheKeyNamed)
{
    TestEnv env;
    env.WriteConfig("[server]\nport = lots\n");
    auto r = RunProgram({RALPHD_PATH}, env.env, "", std::chrono::seconds(20));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("server.port"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("'lots'"), std::string::npos) << r.err;
}

TEST(FunctionalDaemon, ConcurrentAutostartYieldsOneDaemon)
{
    TestEnv env;
    std::vector<std::thread> clients;
    std::vector<CommandResult> results(8);
    for (int i = 0; i < 8; ++i) {
        clients.emplace_back([&, i] { results[i] = env.Ralph({"daemon", "start"}); });
    }
    for (auto& t : clients) t.join();
    for (const auto& r : results) EXPECT_EQ(r.exit_code, 0) << r.err;
    auto info = env.Call("daemon.info").at("result").as_object();
    pid_t pid = static_cast<pid_t>(info.at("pid").as_int64());
    // Exactly one ralphd process serves this socket.
    int count = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        std::string name = entry.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string cmdline = ReadFile(entry.path().string() + "/cmdline");
        std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
        if (cmdline.find("ralphd") != std::string::npos && cmdline.find(env.socket) != std::string::npos &&
            ProcessAlive(std::stoi(name)))
            ++count;
    }
    EXPECT_EQ(count, 1);
    EXPECT_TRUE(ProcessAlive(pid));
}

TEST(FunctionalProtocolDoc, DocsMatchTheMethodTable)
{
    auto r = RunProgram({RALPHD_PATH, "--protocol-doc"}, {});
    ASSERT_EQ(r.exit_code, 0);
    EXPECT_EQ(ReadFile(std::string(RALPH_SOURCE_DIR) + "/docs/protocol.md"), r.out)
        << "docs/protocol.md is out of date: regenerate it with `ralphd --protocol-doc > docs/protocol.md`";
}

}  // namespace
}  // namespace ralph::test
