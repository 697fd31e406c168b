// ralphd under systemd, tested without a running systemd: the sd_notify protocol against a
// datagram socket the test owns, socket activation through systemd-socket-activate, and the unit
// files checked by systemd-analyze verify.
#include "common/rpc_client.h"
#include "daemon/proc_scan.h"
#include "daemon/store.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace ralph::test {
namespace {

namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// A bound datagram socket standing in for systemd's $NOTIFY_SOCKET.
class NotifySocket {
public:
    explicit NotifySocket(const std::string& path) : path_(path)
    {
        fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            ADD_FAILURE() << "bind " << path << ": " << std::strerror(errno);
    }
    ~NotifySocket()
    {
        close(fd_);
        unlink(path_.c_str());
    }
    /// The next datagram, or "" when none arrives in time.
    std::string Receive(std::chrono::milliseconds timeout)
    {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "";
        char buf[4096];
        ssize_t n = recv(fd_, buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
    }
    /// Datagrams until one contains `what` (returned) or the timeout passes ("").
    std::string WaitFor(const std::string& what, std::chrono::milliseconds timeout, std::vector<std::string>* seen = nullptr)
    {
        auto deadline = SteadyClock::now() + timeout;
        while (SteadyClock::now() < deadline) {
            std::string msg = Receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()));
            if (msg.empty()) continue;
            if (seen) seen->push_back(msg);
            if (msg.find(what) != std::string::npos) return msg;
        }
        return "";
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    int fd_{-1};
};

bool Answers(const std::string& socket)
{
    try {
        RpcClient c(socket);
        return c.Call("daemon.ping").at("result") == "pong";
    } catch (const std::exception&) {
        return false;
    }
}

ino_t Inode(const std::string& path)
{
    struct stat st {};
    return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

TEST(FunctionalSystemd, ReadyOnlyOnceLeftoversAreReconciledAndTheSocketAnswersThenWatchdogThenStopping)
{
    TestEnv env;
    env.WriteConfig("[server]\nstop_timeout = 1500ms\n");
    // A leftover "opencode" of a previous daemon that ignores SIGTERM: reconciling it takes the
    // whole stop_timeout, during which ralphd must not report ready, and answers nothing but
    // WARMING_UP to what needs the store (SPEC §12).
    pid_t leftover = SpawnProgram({"/bin/bash", "-c", "trap '' TERM; exec -a opencode-leftover sleep 120"}, {},
                                  "/dev/null", "/dev/null");
    ASSERT_TRUE(WaitFor([&] {
        auto cmd = ProcFs().Cmdline(leftover);
        return !cmd.empty() && cmd[0] == "opencode-leftover";
    }, 5s));
    {
        std::filesystem::create_directories(env.state_dir);
        RunStore store(env.state_dir + "/ralph.db");
        store.SetManagedServer(ManagedServerRecord{leftover, ProcFs().Stat(leftover)->start_time, 1, NowMillis()});
    }

    NotifySocket notify(env.dir + "/notify.sock");
    auto daemon_env = env.env;
    daemon_env["NOTIFY_SOCKET"] = notify.path();
    daemon_env["WATCHDOG_USEC"] = "200000";  // a ping every 100 ms
    auto started = SteadyClock::now();
    pid_t pid = SpawnProgram({RALPHD_PATH, "--debug"}, daemon_env, env.dir + "/out", env.dir + "/err");

    // Before READY=1, run.list gets no answer but WARMING_UP; the moment READY=1 arrives, the
    // socket answers.
    std::vector<std::string> before_ready;
    bool answered_early = false, saw_warming_up = false;
    auto run_list_reply = [&]() -> std::optional<json::object> {
        try {
            RpcClient c(env.socket);
            c.SendLine(R"({"jsonrpc":"2.0","id":1,"method":"run.list","params":{}})" "\n");
            bool timed_out = false;
            auto line = c.TryReadLine(50ms, &timed_out);
            if (!line) return std::nullopt;
            return json::parse(*line).as_object();
        } catch (const std::exception&) {
            return std::nullopt;  // not listening yet
        }
    };
    std::string ready;
    while (ready.empty() && SteadyClock::now() - started < 20s) {
        std::string msg = notify.Receive(50ms);
        if (msg.find("READY=1") != std::string::npos) {
            ready = msg;
            break;
        }
        if (!msg.empty()) before_ready.push_back(msg);
        if (!ProcessAlive(pid)) break;
        if (auto reply = run_list_reply()) {
            const json::value* error = reply->if_contains("error");
            bool warming_up = error && error->as_object().at("code") == json::value(-32011);
            saw_warming_up = saw_warming_up || warming_up;
            if (!warming_up) {
                // ralphd sends READY=1 before it answers anything else, so READY=1 may have come
                // between our last look at the notify socket and this answer: it is queued there.
                std::string queued = notify.Receive(0ms);
                if (queued.find("READY=1") != std::string::npos) {
                    ready = queued;
                    break;
                }
                if (!queued.empty()) before_ready.push_back(queued);
                answered_early = true;
            }
        }
    }
    auto ready_after = SteadyClock::now() - started;
    ASSERT_FALSE(ready.empty()) << ReadFile(env.dir + "/err");
    EXPECT_TRUE(Answers(env.socket)) << "READY=1 came before the socket answered";
    EXPECT_FALSE(answered_early) << "run.list was answered before the leftovers were reconciled";
    EXPECT_TRUE(saw_warming_up) << "the socket did not answer WARMING_UP while reconciling";
    EXPECT_GE(ready_after, 1400ms) << "READY=1 before the leftover server was stopped";
    EXPECT_FALSE(ProcessAlive(leftover)) << "the leftover server was not stopped before READY=1";
    EXPECT_TRUE(before_ready.empty()) << before_ready.front();
    WaitExit(leftover, 5s);

    // The watchdog is fed from the event loop, about twice per WATCHDOG_USEC.
    int pings = 0;
    auto window = SteadyClock::now() + 1s;
    while (SteadyClock::now() < window)
        if (notify.Receive(100ms).find("WATCHDOG=1") != std::string::npos) ++pings;
    EXPECT_GE(pings, 5);
    EXPECT_LE(pings, 15);

    ASSERT_EQ(kill(pid, SIGTERM), 0);
    EXPECT_NE(notify.WaitFor("STOPPING=1", 10s), "");
    EXPECT_EQ(WaitExit(pid, 30s), 0) << ReadFile(env.dir + "/err");
}

TEST(FunctionalSystemd, NoWatchdogPingsWithoutWatchdogUsecOrForAnotherPid)
{
    TestEnv env;
    NotifySocket notify(env.dir + "/notify.sock");
    for (auto extra : {std::map<std::string, std::string>{},
                       std::map<std::string, std::string>{{"WATCHDOG_USEC", "100000"}, {"WATCHDOG_PID", "1"}}}) {
        auto daemon_env = env.env;
        daemon_env["NOTIFY_SOCKET"] = notify.path();
        for (const auto& [k, v] : extra) daemon_env[k] = v;
        pid_t pid = SpawnProgram({RALPHD_PATH}, daemon_env, env.dir + "/out", env.dir + "/err");
        ASSERT_NE(notify.WaitFor("READY=1", 15s), "") << ReadFile(env.dir + "/err");
        std::vector<std::string> seen;
        EXPECT_EQ(notify.WaitFor("WATCHDOG=1", 600ms, &seen), "");
        kill(pid, SIGTERM);
        EXPECT_NE(notify.WaitFor("STOPPING=1", 10s), "");
        EXPECT_EQ(WaitExit(pid, 30s), 0);
    }
}

TEST(FunctionalSystemd, SocketActivationServesOnTheInheritedSocketAndNeverReplacesIt)
{
    const char* activate = "/usr/bin/systemd-socket-activate";
    if (access(activate, X_OK) != 0) GTEST_SKIP() << activate << " is missing (Debian package systemd)";
    TestEnv env;
    std::filesystem::create_directories(env.dir + "/run");
    // The socket systemd would create from ralphd.socket, at the path ralphd would use itself;
    // the daemon starts on the first connection, like a socket-activated unit.
    std::vector<std::string> argv = {activate, "-l", env.socket};
    for (const auto& [k, v] : env.env)
        if (!v.empty()) argv.push_back("--setenv=" + k + "=" + v);
    argv.insert(argv.end(), {RALPHD_PATH, "--debug"});
    pid_t pid = SpawnProgram(argv, {}, env.dir + "/out", env.dir + "/err");
    ASSERT_TRUE(WaitFor([&] { return PathExists(env.socket); }, 10s)) << ReadFile(env.dir + "/err");
    ino_t inode = Inode(env.socket);

    ASSERT_TRUE(WaitFor([&] { return Answers(env.socket); }, 15s)) << ReadFile(env.dir + "/err");
    json::object info = env.Call("daemon.info").at("result").as_object();
    EXPECT_EQ(info.at("pid").as_int64(), pid) << "systemd-socket-activate execs the service in place";
    EXPECT_EQ(info.at("socket"), json::value(env.socket));
    EXPECT_NE(ReadFile(env.dir + "/err").find("using the socket passed by systemd"), std::string::npos);
    EXPECT_EQ(Inode(env.socket), inode) << "ralphd replaced the inherited socket";
    // The client finds it there and does not start a second daemon.
    auto r = env.Ralph({"daemon", "status"});
    EXPECT_EQ(r.exit_code, 0) << r.err;

    ASSERT_EQ(kill(pid, SIGTERM), 0);
    EXPECT_EQ(WaitExit(pid, 30s), 0) << ReadFile(env.dir + "/err");
    // The socket is systemd's: left in place, not unlinked; only the lock is gone.
    EXPECT_EQ(Inode(env.socket), inode);
    EXPECT_FALSE(PathExists(env.socket + ".lock"));
}

TEST(FunctionalSystemd, InheritedDescriptorThatIsNotAListeningSocketIsRefusedClearly)
{
    TestEnv env;
    // LISTEN_FDS=1 for this very process, but fd 3 is a plain file: bash sets it up, then execs.
    std::string script = "exec 3<" + env.dir + "/notasocket; export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$@\"";
    WriteFile(env.dir + "/notasocket", "x");
    auto r = RunProgram({"/bin/bash", "-c", script, "bash", RALPHD_PATH}, env.env, "", 30s);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("LISTEN_FDS"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not a Unix stream socket"), std::string::npos) << r.err;
}

TEST(FunctionalSystemd, UnitFilesPassSystemdAnalyzeVerify)
{
    const char* analyze = "/usr/bin/systemd-analyze";
    if (access(analyze, X_OK) != 0) GTEST_SKIP() << analyze << " is missing (Debian package systemd)";
    TestEnv env;
    // The installed service names the installed binary; verify a copy naming the built one.
    std::string units = env.dir + "/units";
    std::string service = ReadFile(std::string(RALPH_SOURCE_DIR) + "/systemd/ralphd.service");
    auto at = service.find("/usr/local/bin/ralphd");
    ASSERT_NE(at, std::string::npos) << "ExecStart no longer names /usr/local/bin/ralphd";
    service.replace(at, std::strlen("/usr/local/bin/ralphd"), RALPHD_PATH);
    EXPECT_NE(service.find("Type=notify"), std::string::npos);
    EXPECT_NE(service.find("KillMode=mixed"), std::string::npos);
    EXPECT_NE(service.find("WatchdogSec="), std::string::npos);
    EXPECT_NE(service.find("Restart=on-failure"), std::string::npos);
    WriteFile(units + "/ralphd.service", service);
    WriteFile(units + "/ralphd.socket", ReadFile(std::string(RALPH_SOURCE_DIR) + "/systemd/ralphd.socket"));
    auto r = RunProgram({analyze, "verify", "--man=no", units + "/ralphd.socket", units + "/ralphd.service"},
                        {{"SYSTEMD_LOG_COLOR", "0"}}, units, 60s);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    // Warnings (unknown keys, bad values) come on stderr even with exit code 0.
    EXPECT_EQ(r.err, "") << r.err;
}

TEST(FunctionalSystemd, InstalledUnitsLandWhereSystemdLooksAndNameTheInstalledDaemon)
{
    const char* analyze = "/usr/bin/systemd-analyze";
    if (access(analyze, X_OK) != 0) GTEST_SKIP() << analyze << " is missing (Debian package systemd)";
    TestEnv env;
    // As the README says: cmake --install build --prefix ~/.local
    std::string prefix = env.dir + "/home/.local";
    auto r = RunProgram({RALPH_CMAKE, "--install", RALPH_BINARY_DIR, "--prefix", prefix}, {}, "", 120s);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    // ~/.local/share/systemd/user is on systemd's user unit path ($XDG_DATA_HOME/systemd/user).
    std::string units = prefix + "/share/systemd/user";
    std::string service = ReadFile(units + "/ralphd.service");
    EXPECT_NE(service.find("ExecStart=" + prefix + "/bin/ralphd\n"), std::string::npos) << service;
    EXPECT_TRUE(PathExists(units + "/ralphd.socket"));
    EXPECT_TRUE(access((prefix + "/bin/ralphd").c_str(), X_OK) == 0);
    EXPECT_TRUE(access((prefix + "/bin/ralph").c_str(), X_OK) == 0);
    auto v = RunProgram({analyze, "verify", "--man=no", units + "/ralphd.socket", units + "/ralphd.service"},
                        {{"SYSTEMD_LOG_COLOR", "0"}}, units, 60s);
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
    EXPECT_EQ(v.err, "") << v.err;
}

}  // namespace
}  // namespace ralph::test
