// Reading /proc (ProcFs, proc_scan.*) and the real POSIX launcher's promises about what a child
// inherits (process.*).
#include "tests/supervisor_test_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace ralph::supervisor_test {
namespace {

TEST(UnitProcFs, ParsesStatEvenWithParenthesesAndSpacesInTheName)
{
    std::string text =
        "4242 (we (ird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654321 1000 10 "
        "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
    auto st = ProcFs::ParseStat(text);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->pid, 4242);
    EXPECT_EQ(st->state, 'S');
    EXPECT_EQ(st->ppid, 17);
    EXPECT_EQ(st->pgid, 4242);
    EXPECT_EQ(st->sid, 4242);
    EXPECT_EQ(st->start_time, 987654321u);
    EXPECT_FALSE(ProcFs::ParseStat("garbage"));

    auto self = ProcFs().Stat(getpid());
    ASSERT_TRUE(self);
    EXPECT_EQ(self->pid, getpid());
    EXPECT_EQ(self->ppid, getppid());
    EXPECT_EQ(self->pgid, getpgrp());
}

TEST(UnitProcFs, ListeningSocketsFromTcpTables)
{
    std::string tcp =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:3B1C 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 55501 1 0 100 0 0 10 0\n"
        "   1: 0100007F:3B1D 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 55502 1 0 100 0 0 10 0\n"
        "   2: 0100007F:3B1E 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 55503 1 0 100 0 0 10 0\n";
    std::map<uint64_t, int> out;
    ProcFs::ParseTcpTable(tcp, 1000, out);
    EXPECT_EQ(out, (std::map<uint64_t, int>{{55501, 0x3B1C}}));  // listening, our uid only
}

TEST(UnitProcFs, EstablishedConnectionsFromTcpTables)
{
    std::string tcp =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:3B1C 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 55501 1 0 100 0 0 10 0\n"
        "   1: 0100007F:3B1C 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 55502 1 0 100 0 0 10 0\n"
        "   2: 0100007F:9C40 0100007F:3B1C 01 00000000:00000000 00:00000000 00000000  1000        0 55503 1 0 100 0 0 10 0\n";
    std::vector<ProcFs::TcpConnection> out;
    ProcFs::ParseTcpConnections(tcp, out);
    ASSERT_EQ(out.size(), 2u);  // the listening socket is no connection
    EXPECT_EQ(out[0].local_port, 0x3B1C);
    EXPECT_EQ(out[0].remote_port, 0x9C40);
    EXPECT_EQ(out[1].inode, 55503u);
}

// A connection of this process to a listening port is its own; one from a child is foreign.
TEST(UnitProcFs, ForeignConnectionsAreThoseOfOtherProcesses)
{
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(listen(listener, 4), 0);
    socklen_t len = sizeof addr;
    getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    const int port = ntohs(addr.sin_port);
    ProcFs proc;
    EXPECT_EQ(proc.ForeignConnections(port, getpid()), 0);
    int own = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(connect(own, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    int accepted = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(accepted, 0);
    EXPECT_EQ(proc.ForeignConnections(port, getpid()), 0);
    // Another process connects and holds the connection.
    pid_t child = fork();
    if (child == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) _exit(1);
        pause();
        _exit(0);
    }
    int foreign = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(foreign, 0);
    EXPECT_EQ(proc.ForeignConnections(port, getpid()), 1);
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    for (int fd : {foreign, accepted, own, listener}) close(fd);
}

TEST(UnitProcFs, GroupRssAddsUpTheProcessGroup)
{
    const int64_t own = ProcFs().GroupRss(getpgrp());
    EXPECT_GT(own, 1 << 20);  // at least this test binary
    EXPECT_EQ(ProcFs().GroupRss(0), 0);
}

TEST(UnitProcFs, RecognisesOpencodeServeCommandLines)
{
    EXPECT_TRUE(ProcFs::IsOpencodeServe({"/x/node_modules/.bin/opencode", "serve", "--port", "4096"}));
    EXPECT_TRUE(ProcFs::IsOpencodeServe({"opencode", "serve"}));
    EXPECT_TRUE(ProcFs::IsOpencodeServe({"node", "/usr/lib/node_modules/opencode-ai/bin/opencode", "serve"}));
    EXPECT_TRUE(ProcFs::IsOpencodeServe({"/x/opencode-ai/bin/opencode.exe", "serve", "--hostname", "127.0.0.1"}));
    EXPECT_FALSE(ProcFs::IsOpencodeServe({"opencode", "attach", "http://127.0.0.1:4096"}));
    EXPECT_FALSE(ProcFs::IsOpencodeServe({"vim", "serve"}));
    EXPECT_FALSE(ProcFs::IsOpencodeServe({"opencode"}));
}

TEST(UnitProcFs, FindsTheListeningPortOfAProcess)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(listen(fd, 1), 0);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    int port = ntohs(addr.sin_port);
    ProcFs proc;
    auto ports = proc.PortsOf(getpid(), proc.ListeningSockets(getuid()));
    EXPECT_NE(std::find(ports.begin(), ports.end(), port), ports.end());
    close(fd);
}

TEST(UnitProcFs, DescendantsIncludeGrandchildren)
{
    pid_t sh = Spawn({"/bin/sh", "-c", "sleep 30 & wait"}, false);
    std::vector<ProcStat> d;
    for (int i = 0; i < 200; ++i) {
        d = ProcFs().Descendants(getpid());
        if (std::any_of(d.begin(), d.end(), [&](const ProcStat& p) { return p.ppid == sh; })) break;
        usleep(10000);
    }
    EXPECT_TRUE(std::any_of(d.begin(), d.end(), [&](const ProcStat& p) { return p.pid == sh; }));
    EXPECT_TRUE(std::any_of(d.begin(), d.end(), [&](const ProcStat& p) { return p.ppid == sh; }));
    kill(sh, SIGKILL);
    for (const ProcStat& p : ProcFs().Descendants(sh)) kill(p.pid, SIGKILL);
    waitpid(sh, nullptr, 0);
}

// ---------------------------------------------------------------------------------------------
// The real launcher

TEST(UnitPosixLauncher, ChildGetsItsOwnSessionNullStdinNoDescriptorsAndDefaultSignals)
{
    asio::io_context io;
    PosixLauncher launcher(io);
    // What a careless launcher would leak: an ignored SIGINT, a blocked SIGUSR1, an open descriptor.
    struct sigaction old_int {};
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigaction(SIGINT, &ign, &old_int);
    sigset_t usr1, old_mask;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, &old_mask);
    int leak = open("/dev/null", O_RDONLY);  // no O_CLOEXEC

    LaunchSpec spec;
    spec.program = "/bin/sh";
    spec.args = {"-c",
                 "echo sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$; "
                 // Builtins only while reading the mask: dash blocks every signal around its own forks.
                 "while read -r k v; do case $k in SigBlk:|SigIgn:) echo \"$k\t$v\";; esac; done < /proc/$$/status; "
                 "echo stdin=$(readlink /proc/$$/fd/0); echo fds:; ls /proc/$$/fd; echo end; "
                 "echo env=$RALPH_TEST_VAR; echo to-stderr >&2; exit 3"};
    spec.env = {"RALPH_TEST_VAR=yes", "PATH=/usr/bin:/bin"};
    auto launched = launcher.Launch(spec);

    sigaction(SIGINT, &old_int, nullptr);
    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    close(leak);

    ASSERT_TRUE(std::holds_alternative<LaunchedProcess>(launched)) << std::get<std::string>(launched);
    LaunchedProcess child = std::get<LaunchedProcess>(launched);
    std::optional<ExitStatus> exit;
    launcher.WatchExit(child.pid, [&](ExitStatus s) { exit = s; });
    RunFor(io, 30s, [&] { return exit.has_value(); });
    ASSERT_TRUE(exit);
    EXPECT_EQ(exit->code, 3);

    auto read_all = [](int fd) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
        close(fd);
        return out;
    };
    std::string out = read_all(child.stdout_fd);
    std::string err = read_all(child.stderr_fd);
    std::string pid = std::to_string(child.pid);
    EXPECT_NE(out.find("sid=" + pid + " pid=" + pid), std::string::npos) << out;
    EXPECT_NE(out.find("SigBlk:\t0000000000000000"), std::string::npos) << out;
    // Nothing ignored (SIGINT was, in the parent) but glibc's two internal signals (32 and 33):
    // its posix_spawn leaves those ignored, and glibc sets them up again in every program it starts.
    auto ign_at = out.find("SigIgn:\t");
    ASSERT_NE(ign_at, std::string::npos) << out;
    const unsigned long long ignored = std::stoull(out.substr(ign_at + 8, 16), nullptr, 16);
    const unsigned long long glibc_internal = (1ULL << (32 - 1)) | (1ULL << (33 - 1));
    EXPECT_EQ(ignored & ~glibc_internal, 0ULL) << out;
    EXPECT_NE(out.find("stdin=/dev/null"), std::string::npos) << out;
    EXPECT_NE(out.find("fds:\n0\n1\n2\nend\n"), std::string::npos) << out;
    EXPECT_NE(out.find("env=yes"), std::string::npos) << out;
    EXPECT_EQ(err, "to-stderr\n");
}

TEST(UnitPosixLauncher, MissingProgramIsAnErrorNamingIt)
{
    asio::io_context io;
    PosixLauncher launcher(io);
    LaunchSpec spec;
    spec.program = "/nonexistent/opencode";
    auto launched = launcher.Launch(spec);
    ASSERT_TRUE(std::holds_alternative<std::string>(launched));
    EXPECT_NE(std::get<std::string>(launched).find("/nonexistent/opencode"), std::string::npos);
    EXPECT_EQ(FindExecutable("sh", "/nonexistent:/bin"), "/bin/sh");
    EXPECT_EQ(FindExecutable("no-such-program-xyz", "/bin:/usr/bin"), "");
}

}  // namespace
}  // namespace ralph::supervisor_test
