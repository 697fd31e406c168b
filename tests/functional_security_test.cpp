// Issue 11, through the real ralphd and ralph: a socket directory another user made (or a symbolic
// link put in the way) is refused by both; a listener of another user gets nothing; NUL bytes in
// parameters are refused; bytes that are not UTF-8 never break a reply; names are printed without
// their control characters; big ids come back as sent; an autostart that fails says why.
//
// The tests of another user's attacks need root: they create a throwaway user (the victim) and
// play the attacker as root. They are skipped with a message otherwise.
#include "common/paths.h"
#include "common/rpc_client.h"
#include "common/text.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <poll.h>
#include <thread>
#include <filesystem>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace ralph::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

/// A user made for one test and deleted after it, with a private directory of its own.
class ThrowawayUser {
public:
    ThrowawayUser()
    {
        name = "rsec" + std::to_string(getpid() % 100000) + std::to_string(++count_);
        auto r = RunProgram({"/usr/sbin/useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-d", "/nonexistent", name}, {});
        if (r.exit_code != 0) {
            error = "useradd " + name + " failed: " + r.err;
            return;
        }
        passwd* pw = getpwnam(name.c_str());
        if (!pw) {
            error = "getpwnam " + name + " found nothing after useradd";
            return;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        char tmpl[] = "/tmp/rsec-XXXXXX";
        dir = mkdtemp(tmpl);
        if (chown(dir.c_str(), uid, gid) != 0) error = "chown " + dir + ": " + std::strerror(errno);
        fallback_socket_dir = "/tmp/ralph-" + std::to_string(uid);
    }
    ~ThrowawayUser()
    {
        std::error_code ec;
        if (!fallback_socket_dir.empty()) fs::remove_all(fallback_socket_dir, ec);
        if (!dir.empty()) fs::remove_all(dir, ec);
        if (uid != 0) RunProgram({"/usr/sbin/userdel", name}, {});
    }

    /// Runs a program as this user, with the environment of a login that has no XDG_RUNTIME_DIR
    /// (so ralph falls back to /tmp/ralph-<uid>).
    CommandResult Run(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
                      std::chrono::seconds timeout = std::chrono::seconds(30)) const
    {
        return RunProgram(Wrap(std::move(argv)), Environment(env), dir, timeout);
    }

    std::map<std::string, std::string> Environment(const std::map<std::string, std::string>& env) const
    {
        std::map<std::string, std::string> base = {
            {"HOME", dir}, {"XDG_RUNTIME_DIR", ""}, {"RALPH_SOCKET", ""}, {"RALPH_STATE_DIR", dir + "/state"},
            {"RALPH_CONFIG", dir + "/ralphd.conf"}, {"XDG_CONFIG_HOME", dir + "/config"}, {"RALPHD", RALPHD_PATH},
            {"RALPH_NO_AUTOSTART", ""}, {"NOTIFY_SOCKET", ""}, {"LISTEN_FDS", ""}, {"LISTEN_PID", ""}};
        for (auto& [k, v] : env) base[k] = v;
        return base;
    }

    std::vector<std::string> Wrap(std::vector<std::string> argv) const
    {
        std::vector<std::string> full = {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(gid),
                                         "--clear-groups", "--"};
        full.insert(full.end(), argv.begin(), argv.end());
        return full;
    }

    /// Starts a program as this user in the background (stdout and stderr to dir/spawn.*).
    pid_t Spawn(std::vector<std::string> argv) const
    {
        std::vector<std::string> full = Wrap(std::move(argv));
        return SpawnProgram(full, Environment({}), dir + "/spawn.out", dir + "/spawn.err", dir);
    }

    std::string name, error, dir, fallback_socket_dir;
    uid_t uid{0};
    gid_t gid{0};

private:
    static inline int count_ = 0;
};

#define REQUIRE_ROOT_AND_USER(user)                                                                  \
    if (geteuid() != 0) GTEST_SKIP() << "needs root: it creates a throwaway second user (useradd)"; \
    ThrowawayUser user;                                                                              \
    ASSERT_TRUE(user.error.empty()) << user.error

/// A listening Unix socket at `path` anyone may connect to; -1 on failure. Non-blocking.
int Listen(const std::string& path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 8) != 0) {
        close(fd);
        return -1;
    }
    chmod(path.c_str(), 0666);
    return fd;
}

/// What a connection waiting in `listen_fd`'s queue sent before it closed; nullopt when no
/// connection is waiting. The client has exited, so everything it sent is already buffered.
std::optional<std::string> PendingConnectionBytes(int listen_fd)
{
    int c = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) return std::nullopt;
    std::string got;
    char buf[4096];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) got.append(buf, static_cast<std::size_t>(n));
    close(c);
    return got;
}

/// Starts ralphd with env, expecting it to refuse to start: its exit code and stderr. A ralphd
/// that starts anyway is killed (and the test fails on its exit code).
CommandResult RalphdThatShouldRefuse(const std::map<std::string, std::string>& env, const std::string& dir)
{
    pid_t pid = SpawnProgram({RALPHD_PATH}, env, dir + "/ralphd.out", dir + "/ralphd.err");
    CommandResult r;
    r.exit_code = WaitExit(pid, std::chrono::seconds(20));
    if (r.exit_code == -1) {
        kill(pid, SIGKILL);
        WaitExit(pid, std::chrono::seconds(10));
    }
    r.err = ReadFile(dir + "/ralphd.err");
    return r;
}

/// A config whose opencode does not exist: runs fail at once, which is all these tests need.
void NoOpencode(TestEnv& env) { env.WriteConfig("[server]\nopencode = " + env.dir + "/no-such-opencode\n"); }

/// A project directory (with .git, so it is its own root) under the test's directory.
std::string MakeProject(const TestEnv& env)
{
    std::string project = env.dir + "/proj";
    fs::create_directories(project + "/.git");
    fs::create_directories(project + "/tasks");
    return project;
}

// --- item 1: the socket directory and the process behind the socket -----------------------------

TEST(FunctionalSecurity, SocketDirectoryMadeByAnotherUserIsRefusedByRalphdAndRalph)
{
    REQUIRE_ROOT_AND_USER(victim);
    // The attacker (root here) makes the victim's fallback directory first, open to all, and
    // listens where the victim's ralph would connect.
    ASSERT_EQ(mkdir(victim.fallback_socket_dir.c_str(), 0777), 0) << std::strerror(errno);
    chmod(victim.fallback_socket_dir.c_str(), 0777);
    int spoof = Listen(victim.fallback_socket_dir + "/ralphd.sock");
    ASSERT_GE(spoof, 0) << std::strerror(errno);

    auto r = victim.Run({RALPH_PATH, "status"});
    EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
    EXPECT_NE(r.err.find("refusing the socket directory " + victim.fallback_socket_dir + ": it belongs to uid 0"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(r.out.find("server:"), std::string::npos) << "printed an answer: " << r.out;
    EXPECT_FALSE(PendingConnectionBytes(spoof).has_value()) << "ralph connected to the attacker's socket";
    close(spoof);

    // ralphd refuses the directory too, and writes nothing into it.
    unlink((victim.fallback_socket_dir + "/ralphd.sock").c_str());
    r = victim.Run({RALPHD_PATH}, {}, std::chrono::seconds(20));
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("refusing the socket directory " + victim.fallback_socket_dir), std::string::npos) << r.err;
    EXPECT_FALSE(PathExists(victim.fallback_socket_dir + "/ralphd.sock.lock"));
    EXPECT_FALSE(PathExists(victim.fallback_socket_dir + "/ralphd.sock"));
}

TEST(FunctionalSecurity, SocketDirectoryThatIsASymlinkIsRefused)
{
    REQUIRE_ROOT_AND_USER(victim);
    // A link to a directory the victim owns, 0700: only the link itself gives it away.
    std::string target = victim.dir + "/elsewhere";
    ASSERT_EQ(mkdir(target.c_str(), 0700), 0);
    ASSERT_EQ(chown(target.c_str(), victim.uid, victim.gid), 0);
    ASSERT_EQ(symlink(target.c_str(), victim.fallback_socket_dir.c_str()), 0) << std::strerror(errno);

    auto r = victim.Run({RALPHD_PATH}, {}, std::chrono::seconds(20));
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("refusing the socket directory " + victim.fallback_socket_dir + ": it is a symbolic link"),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(fs::is_empty(target)) << "ralphd wrote into the link's target";

    r = victim.Run({RALPH_PATH, "--no-autostart", "status"});
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("it is a symbolic link"), std::string::npos) << r.err;
}

TEST(FunctionalSecurity, RalphSendsNothingToAListenerOfAnotherUser)
{
    REQUIRE_ROOT_AND_USER(victim);
    // The victim's own directory, as ralph makes it; the listener in it is root's.
    ASSERT_EQ(mkdir(victim.fallback_socket_dir.c_str(), 0700), 0);
    ASSERT_EQ(chown(victim.fallback_socket_dir.c_str(), victim.uid, victim.gid), 0);
    int spoof = Listen(victim.fallback_socket_dir + "/ralphd.sock");
    ASSERT_GE(spoof, 0) << std::strerror(errno);

    auto r = victim.Run({RALPH_PATH, "status"});
    EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
    EXPECT_NE(r.err.find("runs as uid 0 (pid "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not as you (uid " + std::to_string(victim.uid) + "); nothing was sent"), std::string::npos)
        << r.err;
    auto sent = PendingConnectionBytes(spoof);
    ASSERT_TRUE(sent.has_value()) << "ralph never connected";
    EXPECT_EQ(*sent, "") << "ralph sent its request to another user's process";
    close(spoof);
}

TEST(FunctionalSecurity, RalphdMakesTheFallbackDirectoryPrivateAndServesThere)
{
    REQUIRE_ROOT_AND_USER(victim);
    pid_t pid = victim.Spawn({RALPHD_PATH});
    std::string sock = victim.fallback_socket_dir + "/ralphd.sock";
    bool up = WaitFor([&] { return PathExists(sock); }, std::chrono::seconds(15));
    struct stat st {};
    int lstat_rc = lstat(victim.fallback_socket_dir.c_str(), &st);
    auto r = victim.Run({RALPH_PATH, "--no-autostart", "daemon", "status"});
    kill(pid, SIGTERM);
    int code = WaitExit(pid, std::chrono::seconds(20));
    if (code == -1) {
        kill(pid, SIGKILL);
        WaitExit(pid, std::chrono::seconds(5));
    }
    ASSERT_TRUE(up) << "ralphd did not listen on " << sock << ": " << ReadFile(victim.dir + "/spawn.err");
    ASSERT_EQ(lstat_rc, 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_uid, victim.uid);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(code, 0);
}

TEST(FunctionalSecurity, LockFileAndDatabaseSymlinksAreNotFollowed)
{
    TestEnv env;
    NoOpencode(env);
    std::string precious = env.dir + "/precious";
    WriteFile(precious, "precious\n");
    fs::create_directories(DirName(env.socket));
    chmod(DirName(env.socket).c_str(), 0700);
    ASSERT_EQ(symlink(precious.c_str(), (env.socket + ".lock").c_str()), 0);
    auto r = RalphdThatShouldRefuse(env.env, env.dir);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("cannot open lock file " + env.socket + ".lock: it is a symbolic link"), std::string::npos)
        << r.err;
    EXPECT_EQ(ReadFile(precious), "precious\n");

    unlink((env.socket + ".lock").c_str());
    fs::create_directories(env.state_dir);
    ASSERT_EQ(symlink(precious.c_str(), (env.state_dir + "/ralph.db").c_str()), 0);
    r = RalphdThatShouldRefuse(env.env, env.dir);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("ralph.db: it is a symbolic link"), std::string::npos) << r.err;
    EXPECT_EQ(ReadFile(precious), "precious\n");
}

// --- item 3: NUL bytes in parameters --------------------------------------------------------------

TEST(FunctionalSecurity, NulInAPathParameterIsRefusedAndStartsNothing)
{
    TestEnv env;
    NoOpencode(env);
    std::string project = MakeProject(env);
    WriteFile(project + "/tasks/hello/prompt.md", "hello\n");
    env.StartDaemon();
    const std::string nul(1, '\0');
    struct Case {
        const char* method;
        json::object params;
        const char* param;
    };
    std::vector<Case> cases = {
        {"run.start", {{"task", "/etc" + nul}, {"cwd", "/"}}, "task"},
        {"run.start", {{"task", "hello"}, {"cwd", project + nul + "x"}}, "cwd"},
        {"task.resolve", {{"ref", "tasks/hello" + nul}, {"cwd", project}}, "ref"},
        {"task.list", {{"cwd", project + "/" + nul}}, "cwd"},
        {"run.get", {{"run", "hello" + nul}, {"cwd", project}}, "run"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(std::string(c.method) + " " + json::serialize(c.params));
        json::object reply = env.Call(c.method, c.params);
        ASSERT_TRUE(reply.contains("error")) << json::serialize(reply);
        EXPECT_EQ(reply.at("error").at("code").as_int64(), -32602);
        std::string message(reply.at("error").at("message").as_string());
        EXPECT_NE(message.find(std::string("'") + c.param + "' holds a NUL byte"), std::string::npos) << message;
    }
    json::object list = env.Call("run.list", json::object{{"all", true}});
    ASSERT_TRUE(list.contains("result")) << json::serialize(list);
    EXPECT_TRUE(list.at("result").at("runs").as_array().empty()) << json::serialize(list);
}

// The request's settings pass the same checks as ralph.ini's: what one refuses, so does the other.
TEST(FunctionalSecurity, RunStartRefusesWhatRalphIniRefusesAndStartsNothing)
{
    TestEnv env;
    NoOpencode(env);
    std::string project = MakeProject(env);
    WriteFile(project + "/tasks/hello/prompt.md", "hello\n");
    env.StartDaemon();
    struct Case {
        json::object params;
        const char* param;
    };
    std::vector<Case> cases = {
        {{{"model", "anthropic/claude/"}}, "model"},
        {{{"model", "/claude"}}, "model"},
        {{{"promise", "<done>"}}, "promise"},
        {{{"max_iterations", 0}}, "max_iterations"},
        {{{"iteration_timeout", "5 parsecs"}}, "iteration_timeout"},
        {{{"iteration_timeout", 0}}, "iteration_timeout"},
    };
    for (Case& c : cases) {
        c.params["task"] = "hello";
        c.params["cwd"] = project;
        SCOPED_TRACE(json::serialize(c.params));
        json::object reply = env.Call("run.start", c.params);
        ASSERT_TRUE(reply.contains("error")) << json::serialize(reply);
        EXPECT_EQ(reply.at("error").at("code").as_int64(), -32602);
        std::string message(reply.at("error").at("message").as_string());
        EXPECT_NE(message.find(std::string("'") + c.param + "'"), std::string::npos) << message;
    }
    WriteFile(project + "/tasks/hello/ralph.ini", "[run]\nmodel = anthropic/claude/\n");
    json::object reply = env.Call("run.start", json::object{{"task", "hello"}, {"cwd", project}});
    ASSERT_TRUE(reply.contains("error")) << json::serialize(reply);
    EXPECT_EQ(reply.at("error").at("code").as_int64(), -32602);
    json::object list = env.Call("run.list", json::object{{"all", true}});
    ASSERT_TRUE(list.contains("result")) << json::serialize(list);
    EXPECT_TRUE(list.at("result").at("runs").as_array().empty()) << json::serialize(list);
}

// --- item 4: bytes that are not UTF-8 -------------------------------------------------------------

TEST(FunctionalSecurity, TaskNamesThatAreNotUtf8NeverBreakAReply)
{
    TestEnv env;
    NoOpencode(env);
    std::string project = MakeProject(env);
    // One task named with byte 0xff, and one reached through a link to such a directory.
    WriteFile(project + "/tasks/bad\xff" "name/prompt.md", "hello\n");
    WriteFile(env.dir + "/elsewhere/real\xfe" "dir/prompt.md", "hello\n");
    ASSERT_EQ(symlink((env.dir + "/elsewhere/real\xfe" "dir").c_str(), (project + "/tasks/link").c_str()), 0);
    env.StartDaemon();

    auto r = env.Ralph({"run", "link"}, project);
    EXPECT_NE(r.exit_code, 3) << r.err;  // the run fails at once (no opencode); its record stays
    auto runs = env.Call("run.list", json::object{{"all", true}});
    ASSERT_TRUE(runs.contains("result")) << json::serialize(runs);
    ASSERT_EQ(runs.at("result").at("runs").as_array().size(), 1u) << json::serialize(runs);
    EXPECT_NE(std::string(runs.at("result").at("runs").at(0).at("task_dir").as_string()).find("real\xEF\xBF\xBD" "dir"),
              std::string::npos);

    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"status"}, {"status", "--all"}, {"show", "link"}, {"logs", "link"}, {"tasks"}, {"--json", "tasks"}}) {
        std::string what;
        for (const auto& a : args) what += a + " ";
        SCOPED_TRACE(what);
        r = env.Ralph(args, project);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_TRUE(IsValidUtf8(r.out)) << r.out;
    }
    r = env.Ralph({"tasks"}, project);
    EXPECT_NE(r.out.find("bad\xEF\xBF\xBD" "name"), std::string::npos) << r.out;
    r = env.Ralph({"show", "link"}, project);
    EXPECT_NE(r.out.find("real\xEF\xBF\xBD" "dir"), std::string::npos) << r.out;
}

TEST(FunctionalSecurity, BinaryRalphIniIsAClearErrorNotAnUnreachableDaemon)
{
    TestEnv env;
    NoOpencode(env);
    std::string project = MakeProject(env);
    WriteFile(project + "/tasks/bin/prompt.md", "hello\n");
    WriteFile(project + "/tasks/bin/ralph.ini", "\xff\xfe[run]\nmax_iterations = \xff\x01\x02\n");
    env.StartDaemon();
    auto r = env.Ralph({"run", "bin"}, project);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("ralph.ini"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("cannot reach"), std::string::npos) << r.err;
    EXPECT_TRUE(IsValidUtf8(r.err)) << r.err;
}

TEST(FunctionalSecurity, AnUnreadableReplyIsNotReportedAsAnUnreachableDaemon)
{
    // A listener standing in for a broken ralphd (today's ralphd sends no such reply): ralph must
    // say the daemon answered badly, not tell the user to start it.
    TestEnv env;
    fs::create_directories(DirName(env.socket));
    int listener = Listen(env.socket);
    ASSERT_GE(listener, 0) << std::strerror(errno);
    std::thread server([&] {
        pollfd p{listener, POLLIN, 0};
        if (poll(&p, 1, 20000) != 1) return;
        int c = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        char buf[4096];
        pollfd q{c, POLLIN, 0};
        if (poll(&q, 1, 20000) == 1 && read(c, buf, sizeof buf) > 0) {
            const char reply[] = "\xff\xfe{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\x1b[2J}\n";
            (void)!write(c, reply, sizeof reply - 1);
        }
        close(c);
    });
    auto r = env.Ralph({"--no-autostart", "status"});
    server.join();
    close(listener);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("sent a reply that is not a JSON-RPC message"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("Start it with"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << "the reply's escape sequence was printed raw";
}

// --- item 6: control characters in names -----------------------------------------------------------

TEST(FunctionalSecurity, StatusAndTasksShowControlCharactersVisibly)
{
    TestEnv env;
    NoOpencode(env);
    std::string project = MakeProject(env);
    WriteFile(project + "/tasks/evil\x1b[31mred/prompt.md", "hello\n");
    WriteFile(project + "/tasks/two\nlines/prompt.md", "hello\n");
    env.StartDaemon();
    auto r = env.Ralph({"run", "evil\x1b[31mred"}, project);
    EXPECT_NE(r.exit_code, 3) << r.err;

    r = env.Ralph({"tasks"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("evil\\e[31mred"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("two\\nlines"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("two\nlines"), std::string::npos) << r.out;

    r = env.Ralph({"status"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("evil\\e[31mred"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
    // --json keeps the name as it is: JSON escapes it.
    r = env.Ralph({"--json", "tasks"}, project);
    EXPECT_NE(r.out.find("evil\\u001b[31mred"), std::string::npos) << r.out;
}

// --- item 7: the response id ----------------------------------------------------------------------

TEST(FunctionalSecurity, BigRequestIdsComeBackExactlyAsSent)
{
    TestEnv env;
    env.StartDaemon();
    RpcClient c(env.socket);
    c.SendLine(R"({"jsonrpc":"2.0","method":"daemon.ping","id":123456789012345678901234567890})" "\n");
    auto line = c.ReadLine(std::chrono::seconds(30));
    ASSERT_TRUE(line);
    EXPECT_NE(line->find(R"("id":123456789012345678901234567890})"), std::string::npos) << *line;

    c.SendLine(R"([{"jsonrpc":"2.0","method":"daemon.ping","id":1.0},)"
               R"({"jsonrpc":"2.0","method":"no.such","id":-98765432109876543210987654321}])" "\n");
    line = c.ReadLine(std::chrono::seconds(30));
    ASSERT_TRUE(line);
    EXPECT_NE(line->find(R"("id":1.0})"), std::string::npos) << *line;
    EXPECT_NE(line->find(R"("id":-98765432109876543210987654321})"), std::string::npos) << *line;
}

// --- item 8: autostart into a read-only state directory -------------------------------------------

TEST(FunctionalSecurity, AutostartIntoAReadOnlyStateDirectoryPrintsRalphdsCause)
{
    // Root writes through any mode, so as root the victim is a throwaway user.
    std::unique_ptr<ThrowawayUser> user;
    if (geteuid() == 0) {
        user = std::make_unique<ThrowawayUser>();
        ASSERT_TRUE(user->error.empty()) << user->error;
    }
    TestEnv env;
    std::string base = user ? user->dir : env.dir;
    std::string state = base + "/ro-state";
    ASSERT_EQ(mkdir(state.c_str(), 0500), 0);
    if (user) {
        ASSERT_EQ(chown(state.c_str(), user->uid, user->gid), 0);
    }
    std::map<std::string, std::string> vars = {{"RALPH_SOCKET", base + "/run/ralphd.sock"},
                                               {"RALPH_STATE_DIR", state},
                                               {"RALPH_CONFIG", base + "/ralphd.conf"}};
    CommandResult r;
    if (user) {
        r = user->Run({RALPH_PATH, "status"}, vars);
    } else {
        r = env.Ralph({"status"}, "", vars);
    }
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("cannot open state database " + state + "/ralph.db: Permission denied"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("its log " + state + "/ralphd.log cannot be written"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("see its log"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ralph::test
