// `ralph server ...` against the real ralphd without a real opencode: the messages a user gets
// when opencode is missing, external mode refusing to stop, and the status shapes.
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ralph::test {
namespace {

namespace json = boost::json;

/// A loopback port nothing listens on (bound, read, released).
int UnusedPort()
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
}

TEST(FunctionalServer, MissingOpencodeSaysWhereToSetItAndWhatToInstall)
{
    TestEnv env;
    env.env["RALPH_OPENCODE"] = env.dir + "/nowhere/opencode";
    env.StartDaemon();
    CommandResult start = env.Ralph({"server", "start"});
    EXPECT_EQ(start.exit_code, 1);
    EXPECT_NE(start.err.find("opencode not found at " + env.dir + "/nowhere/opencode"), std::string::npos) << start.err;
    EXPECT_NE(start.err.find("RALPH_OPENCODE in ralphd's environment names it"), std::string::npos) << start.err;
    EXPECT_NE(start.err.find("ralph daemon stop"), std::string::npos) << start.err;
    EXPECT_NE(start.err.find("install opencode-ai@1.18.33"), std::string::npos) << start.err;

    CommandResult js = env.Ralph({"--json", "server", "start"});
    EXPECT_EQ(js.exit_code, 1);
    EXPECT_EQ(json::parse(js.out).at("error").at("name"), "SERVER_UNAVAILABLE");

    json::object st = json::parse(env.Ralph({"--json", "server", "status"}).out).as_object();
    EXPECT_EQ(st.at("state"), "fatal");
    EXPECT_NE(st.at("last_error").as_string().find("opencode not found"), std::string::npos);
    CommandResult human = env.Ralph({"server", "status"});
    EXPECT_NE(human.out.find("server: fatal (managed)"), std::string::npos) << human.out;
    EXPECT_NE(human.out.find("ralph server start"), std::string::npos) << human.out;

    // Not on PATH either.
    TestEnv bare;
    bare.env["PATH"] = bare.dir;
    bare.env["RALPH_OPENCODE"] = "";  // unset: look on PATH
    bare.StartDaemon();
    CommandResult none = bare.Ralph({"server", "start"});
    EXPECT_EQ(none.exit_code, 1);
    EXPECT_NE(none.err.find("opencode not found on PATH"), std::string::npos) << none.err;
}

TEST(FunctionalServer, StoppedServerStatusHasEveryField)
{
    TestEnv env;
    env.StartDaemon();
    CommandResult js = env.Ralph({"--json", "server", "status"});
    ASSERT_EQ(js.exit_code, 0) << js.err;
    json::object st = json::parse(js.out).as_object();
    for (const char* key : {"mode", "state", "pid", "url", "port", "version", "uptime", "restarts", "last_error",
                            "healthy", "untracked_servers"})
        EXPECT_TRUE(st.contains(key)) << key << " missing from " << js.out;
    EXPECT_EQ(st.at("mode"), "managed");
    EXPECT_EQ(st.at("state"), "stopped");
    EXPECT_EQ(st.at("healthy"), false);
    EXPECT_TRUE(st.at("pid").is_null());
    EXPECT_TRUE(st.at("url").is_null());
    EXPECT_TRUE(st.at("untracked_servers").is_array());

    CommandResult stop = env.Ralph({"server", "stop"});
    EXPECT_EQ(stop.exit_code, 0);
    EXPECT_NE(stop.out.find("was not running"), std::string::npos) << stop.out;
}

TEST(FunctionalServer, StopWithoutADaemonDoesNotStartOne)
{
    TestEnv env;
    CommandResult stop = env.Ralph({"server", "stop"});
    EXPECT_EQ(stop.exit_code, 0) << stop.err;
    EXPECT_NE(stop.out.find("not running"), std::string::npos) << stop.out;
    EXPECT_FALSE(PathExists(env.socket));
}

TEST(FunctionalServer, ExternalModeReportsTheServerAndRefusesToStopIt)
{
    TestEnv env;
    int port = UnusedPort();
    env.WriteConfig("[server]\nmode = external\nurl = http://127.0.0.1:" + std::to_string(port) +
                    "\nhealth_interval = 1s\n");
    env.StartDaemon();
    json::object st = json::parse(env.Ralph({"--json", "server", "status"}).out).as_object();
    EXPECT_EQ(st.at("mode"), "external");
    EXPECT_EQ(st.at("state"), "external");
    EXPECT_EQ(st.at("healthy"), false);
    EXPECT_EQ(st.at("url").as_string(), "http://127.0.0.1:" + std::to_string(port));

    CommandResult stop = env.Ralph({"--json", "server", "stop"});
    EXPECT_EQ(stop.exit_code, 1);
    EXPECT_EQ(json::parse(stop.out).at("error").at("name"), "INVALID_STATE");
    EXPECT_NE(stop.err.find("server.mode is external"), std::string::npos) << stop.err;
    EXPECT_EQ(env.Ralph({"server", "restart"}).exit_code, 1);

    CommandResult start = env.Ralph({"server", "start"});
    EXPECT_EQ(start.exit_code, 1);
    EXPECT_NE(start.err.find("does not answer"), std::string::npos) << start.err;
    EXPECT_NE(start.err.find("server.url"), std::string::npos) << start.err;

    CommandResult human = env.Ralph({"server", "status"});
    EXPECT_NE(human.out.find("server: external (external), NOT healthy"), std::string::npos) << human.out;
}

}  // namespace
}  // namespace ralph::test
