// The server supervisor's state machine on a FakeClock: health checks, back-off, start limit,
// start timeout, stop and explicit start, with time moved by the test and no wall-clock
// assertion. The launcher and opencode's HTTP side are the fakes of supervisor_test_support.h.
#include "daemon/supervisor_phase.h"
#include "tests/supervisor_test_support.h"

namespace ralph::supervisor_test {
namespace {

class UnitSupervisorOnFakeClock : public UnitServerSupervisor {
protected:
    void SetUp() override
    {
        UnitServerSupervisor::SetUp();
        clock_ = &fake_;
        settings_.health_interval = 1s;
        settings_.health_failures = 3;
        settings_.stop_timeout = 2s;
        settings_.restart_backoff_max = 60s;
        settings_.start_limit_burst = 3;
        settings_.start_limit_interval = 10min;
        hooks_.initial_backoff = 1s;
        hooks_.start_timeout = 5s;
    }
    void ShutDown(ServerSupervisor& s) override { Finish(s.Shutdown()); }

    /// Runs what is ready on the io_context, and the loopback I/O it waits for, until nothing is.
    void Settle()
    {
        for (int idle = 0; idle < 3;) {
            if (io_.stopped()) io_.restart();
            if (io_.poll() > 0 || io_.run_one_for(1ms) > 0) idle = 0;
            else ++idle;
        }
    }
    /// Moves the fake clock on and lets the coroutines it woke go on.
    void Advance(Clock::Duration d)
    {
        fake_.Advance(d);
        Settle();
    }
    /// Advances `step` at a time until `done` holds; false after `limit` of fake time.
    bool AdvanceUntil(const std::function<bool()>& done, Clock::Duration step = 100ms, Clock::Duration limit = 10min)
    {
        const auto end = fake_.Now() + limit;
        Settle();
        while (!done()) {
            if (fake_.Now() >= end) return false;
            Advance(step);
        }
        return true;
    }
    /// Runs a coroutine to its end, moving fake time on as it needs; rethrows its exception.
    template <typename T>
    T Finish(asio::awaitable<T> a)
    {
        auto f = SpawnFuture(io_, std::move(a));
        if (!AdvanceUntil([&] { return f.wait_for(0s) == std::future_status::ready; }))
            throw std::runtime_error("the coroutine did not finish within 10 minutes of fake time");
        return TakeFuture<T>(f);
    }
    double NextRestartIn() const { return sup_->StatusJson().at("next_restart_in").to_number<double>(); }
    static void CrashAtOnce(FakeLauncher& l, FakeLauncher::Proc& p) { l.Exit(p.pid, ExitStatus{1, 0}); }

    FakeClock fake_;
};

TEST_F(UnitSupervisorOnFakeClock, LiveThenHealthFailuresThenRestartAfterTheBackoffThenFatalAtTheStartLimit)
{
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    ServerSupervisor& s = Make();
    std::optional<Clock::TimePoint> running_at, unhealthy_at;
    s.Subscribe([&](ServerState st) {
        if (st == ServerState::Running && !running_at) running_at = fake_.Now();
        if (st == ServerState::Unhealthy && !unhealthy_at) unhealthy_at = fake_.Now();
    });
    Result<ServerEndpoint> ep = Finish(s.Ensure());
    ASSERT_TRUE(ep.ok()) << ep.status().message();
    EXPECT_EQ(ep->port, http_->port());
    ASSERT_TRUE(s.Live());
    ASSERT_TRUE(running_at);
    EXPECT_EQ(s.phase(), SupervisorPhase::Running);
    ASSERT_EQ(launcher_->order.size(), 1u);
    const int first = launcher_->order[0];

    // One check per health_interval; the third failure in a row makes it unhealthy.
    http_->unhealthy = true;
    ASSERT_TRUE(AdvanceUntil([&] { return unhealthy_at.has_value(); }, 1s));
    EXPECT_EQ(*unhealthy_at - *running_at, 3s);
    EXPECT_EQ(http_->health_requests, 4);  // the one of the start, then three failed
    EXPECT_FALSE(s.Live());
    EXPECT_NE(s.StatusJson().at("last_error").as_string().find("health check 3/3 failed"), std::string::npos)
        << s.StatusJson().at("last_error");

    // Terminated (SIGTERM to its group), and started again once the 1 s back-off is over.
    EXPECT_EQ(launcher_->SignalsTo(first, SIGTERM), 1);
    ASSERT_EQ(s.state(), ServerState::Backoff);
    EXPECT_EQ(s.phase(), SupervisorPhase::BackoffServerEnded);
    EXPECT_EQ(NextRestartIn(), 1.0);
    http_->unhealthy = false;
    Advance(999ms);
    EXPECT_EQ(s.state(), ServerState::Backoff);
    EXPECT_EQ(launcher_->order.size(), 1u);
    Advance(1ms);
    EXPECT_EQ(s.state(), ServerState::Running);
    ASSERT_EQ(launcher_->order.size(), 2u);
    EXPECT_EQ(s.StatusJson().at("restarts"), 1);
    EXPECT_TRUE(s.Live());

    // It crashes, and so does every start after: the back-off doubles to 2 s, and the third start
    // within start_limit_interval makes it fatal.
    launcher_->on_launch = CrashAtOnce;
    launcher_->Exit(launcher_->order[1], ExitStatus{-1, SIGKILL});
    Settle();
    ASSERT_EQ(s.state(), ServerState::Backoff);
    EXPECT_EQ(NextRestartIn(), 2.0);
    Advance(1999ms);
    EXPECT_EQ(launcher_->order.size(), 2u);
    Advance(1ms);
    EXPECT_EQ(launcher_->order.size(), 3u);
    ASSERT_EQ(s.state(), ServerState::Fatal);
    EXPECT_EQ(s.StatusJson().at("restarts"), 2);
    EXPECT_EQ(states_, (std::vector<ServerState>{ServerState::Starting, ServerState::Running, ServerState::Unhealthy,
                                                 ServerState::Backoff, ServerState::Starting, ServerState::Running,
                                                 ServerState::Backoff, ServerState::Starting, ServerState::Fatal}));
    // Fatal stays fatal however long.
    Advance(1h);
    EXPECT_EQ(launcher_->order.size(), 3u);
    EXPECT_EQ(s.state(), ServerState::Fatal);
}

TEST_F(UnitSupervisorOnFakeClock, StopDuringTheBackoffEndsItAndNothingRestarts)
{
    launcher_->on_launch = CrashAtOnce;
    ServerSupervisor& s = Make();
    EXPECT_EQ(Finish(s.Ensure()).status().code(), kServerUnavailable);
    ASSERT_EQ(s.phase(), SupervisorPhase::BackoffStartFailed);
    EXPECT_EQ(NextRestartIn(), 1.0);
    EXPECT_TRUE(Finish(s.Stop()).ok());
    EXPECT_EQ(s.state(), ServerState::Stopped);
    EXPECT_EQ(s.phase(), SupervisorPhase::Stopped);
    EXPECT_EQ(s.stops_begun(), 1u);
    EXPECT_EQ(s.last_stop_why(), "stop requested");
    Advance(1min);
    EXPECT_EQ(launcher_->order.size(), 1u);
    EXPECT_EQ(s.state(), ServerState::Stopped);
    EXPECT_EQ(states_, (std::vector<ServerState>{ServerState::Starting, ServerState::Backoff, ServerState::Stopped}));
}

TEST_F(UnitSupervisorOnFakeClock, ExplicitStartClearsFatalAndTheRestartHistory)
{
    settings_.start_limit_burst = 2;
    launcher_->on_launch = CrashAtOnce;
    ServerSupervisor& s = Make();
    EXPECT_EQ(Finish(s.Ensure()).status().code(), kServerUnavailable);
    Advance(1s);  // the second start fails too: two starts within the interval
    ASSERT_EQ(s.state(), ServerState::Fatal);
    ASSERT_EQ(launcher_->order.size(), 2u);
    EXPECT_EQ(Finish(s.Ensure()).status().code(), kServerUnavailable);
    EXPECT_EQ(launcher_->order.size(), 2u);

    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    EXPECT_TRUE(Finish(s.Start()).ok());
    EXPECT_EQ(s.state(), ServerState::Running);
    EXPECT_EQ(s.StatusJson().at("restarts"), 0);
    ASSERT_EQ(launcher_->order.size(), 3u);

    // A crash now waits the initial back-off again (it was at 2 s) and is within the limit.
    launcher_->Exit(launcher_->order[2], ExitStatus{-1, SIGKILL});
    Settle();
    ASSERT_EQ(s.state(), ServerState::Backoff);
    EXPECT_EQ(NextRestartIn(), 1.0);
    Advance(1s);
    EXPECT_EQ(s.state(), ServerState::Running);
    EXPECT_EQ(launcher_->order.size(), 4u);
}

TEST_F(UnitSupervisorOnFakeClock, ExplicitStartCutsTheBackoffShort)
{
    settings_.restart_backoff_max = 1h;
    hooks_.initial_backoff = 1h;
    launcher_->on_launch = CrashAtOnce;
    ServerSupervisor& s = Make();
    EXPECT_EQ(Finish(s.Ensure()).status().code(), kServerUnavailable);
    ASSERT_EQ(s.state(), ServerState::Backoff);
    const auto backoff_at = fake_.Now();
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    EXPECT_TRUE(Finish(s.Start()).ok());
    EXPECT_EQ(s.state(), ServerState::Running);
    EXPECT_EQ(launcher_->order.size(), 2u);
    EXPECT_LT(fake_.Now() - backoff_at, 1h);
}

TEST_F(UnitSupervisorOnFakeClock, StartTimeoutIsCountedOnTheClock)
{
    launcher_->on_launch = [](FakeLauncher&, FakeLauncher::Proc&) {};  // never prints its listening line
    ServerSupervisor& s = Make();
    auto ensure = SpawnFuture(io_, s.Ensure());
    Settle();
    ASSERT_EQ(launcher_->order.size(), 1u);
    EXPECT_EQ(s.state(), ServerState::Starting);
    Advance(hooks_.start_timeout - 1ms);
    EXPECT_EQ(s.state(), ServerState::Starting);
    EXPECT_EQ(launcher_->SignalsTo(launcher_->order[0], SIGTERM), 0);
    Advance(1ms);
    EXPECT_EQ(launcher_->SignalsTo(launcher_->order[0], SIGTERM), 1);
    EXPECT_EQ(s.phase(), SupervisorPhase::BackoffStartFailed);
    ASSERT_EQ(ensure.wait_for(0s), std::future_status::ready);
    Result<ServerEndpoint> ensured = *ensure.get();
    ASSERT_FALSE(ensured.ok()) << "Ensure succeeded without a listening line";
    EXPECT_NE(ensured.status().message().find("did not print its listening line within 5s"), std::string::npos)
        << ensured.status().message();
}

TEST(UnitSupervisorPhase, TransitionsAndTheStatesTheyShow)
{
    using P = SupervisorPhase;
    EXPECT_TRUE(TransitionAllowed(P::Stopped, P::Starting));
    EXPECT_TRUE(TransitionAllowed(P::Starting, P::BackoffStartFailed));
    EXPECT_TRUE(TransitionAllowed(P::Running, P::Unhealthy));
    EXPECT_TRUE(TransitionAllowed(P::BackoffServerEnded, P::Starting));
    EXPECT_TRUE(TransitionAllowed(P::Fatal, P::Stopped));
    EXPECT_TRUE(TransitionAllowed(P::Running, P::Stopping));
    EXPECT_TRUE(TransitionAllowed(P::External, P::ShuttingDown));
    // Nothing the supervising loop does undoes a stop or a shutdown.
    EXPECT_FALSE(TransitionAllowed(P::Stopping, P::Running));
    EXPECT_FALSE(TransitionAllowed(P::Stopping, P::BackoffServerEnded));
    EXPECT_FALSE(TransitionAllowed(P::ShuttingDown, P::Starting));
    EXPECT_FALSE(TransitionAllowed(P::ShutDown, P::Stopped));
    EXPECT_FALSE(TransitionAllowed(P::Fatal, P::Starting));
    EXPECT_FALSE(TransitionAllowed(P::External, P::Stopping));

    EXPECT_EQ(ShownState(P::BackoffStartFailed, false), ServerState::Backoff);
    EXPECT_EQ(ShownState(P::BackoffServerEnded, false), ServerState::Backoff);
    EXPECT_EQ(ShownState(P::Stopping, false), std::nullopt);
    EXPECT_EQ(ShownState(P::ShutDown, false), ServerState::Stopped);
    EXPECT_EQ(ShownState(P::ShutDown, true), ServerState::External);
}

/// A /proc of the test's own for the scan of untracked servers: processes with a command line,
/// an owner, a start time and, for a server, a listening socket.
class FakeProc {
public:
    explicit FakeProc(std::string root) : root_(std::move(root)) { std::filesystem::create_directories(root_ + "/net"); }
    /// An `opencode serve` (or, with `serve` false, some other program) listening on `port` (0: none).
    void Add(int pid, uint64_t start_time, int port, bool serve = true)
    {
        const std::string dir = root_ + "/" + std::to_string(pid);
        // As the kernel: a new process is a new pid handed out (/proc/loadavg), an exec is not.
        if (!std::filesystem::exists(dir)) test::WriteFile(root_ + "/loadavg", "0.00 0.00 0.00 1/1 " + std::to_string(++last_pid_) + "\n");
        std::filesystem::create_directories(dir + "/fd");
        test::WriteFile(dir + "/cmdline", serve ? std::string("opencode\0serve\0", 15) : std::string("bash\0", 5));
        test::WriteFile(dir + "/status", "Name:\topencode\nUid:\t" + std::to_string(getuid()) + "\t0\t0\t0\n");
        std::string stat = std::to_string(pid) + " (opencode) S 1 " + std::to_string(pid) + " " + std::to_string(pid);
        for (int field = 7; field <= 21; ++field) stat += " 0";
        test::WriteFile(dir + "/stat", stat + " " + std::to_string(start_time) + " 0 0\n");
        if (port) {
            const uint64_t inode = 70000 + pid;
            std::filesystem::create_symlink("socket:[" + std::to_string(inode) + "]", dir + "/fd/3");
            char row[200];
            std::snprintf(row, sizeof row,
                          "   %d: 0100007F:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000  %u        0 %llu 1\n",
                          pid, port, static_cast<unsigned>(getuid()), static_cast<unsigned long long>(inode));
            tcp_ += row;
        }
        test::WriteFile(root_ + "/net/tcp", "  sl  local_address rem_address   st\n" + tcp_);
    }
    void Remove(int pid) { std::filesystem::remove_all(root_ + "/" + std::to_string(pid)); }

private:
    std::string root_, tcp_;
    int last_pid_{0};
};

std::vector<int64_t> UntrackedPids(ServerSupervisor& s)
{
    std::vector<int64_t> pids;
    const json::object status = s.StatusJson();
    for (const json::value& u : status.at("untracked_servers").as_array()) pids.push_back(u.at("pid").as_int64());
    std::sort(pids.begin(), pids.end());  // in the order of /proc's directory
    return pids;
}

TEST_F(UnitSupervisorOnFakeClock, UntrackedServersNewProcessesAtOnceAnExecWithinASecondAndNeverOneThatEnded)
{
    FakeProc proc(dir_ + "/proc");
    hooks_.proc_root = dir_ + "/proc";
    proc.Add(100, 5000, 4100);
    proc.Add(101, 5001, 0, false);
    ServerSupervisor& s = Make();
    EXPECT_EQ(UntrackedPids(s), (std::vector<int64_t>{100}));

    // A process that became an opencode server by exec (no new pid) shows within a second: its
    // command line is read again then.
    proc.Add(101, 5001, 4101);
    EXPECT_EQ(UntrackedPids(s), (std::vector<int64_t>{100}));
    Advance(1s);
    EXPECT_EQ(UntrackedPids(s), (std::vector<int64_t>{100, 101}));

    // A new process: seen at once.
    proc.Add(102, 5002, 4102);
    EXPECT_EQ(UntrackedPids(s), (std::vector<int64_t>{100, 101, 102}));

    // A server that ended is never listed, and neither is its pid reused by another process.
    proc.Remove(100);
    EXPECT_EQ(UntrackedPids(s), (std::vector<int64_t>{101, 102}));
    proc.Remove(101);
    proc.Add(101, 6000, 0, false);
    EXPECT_EQ(UntrackedPids(s), (std::vector<int64_t>{102}));
}

// The scan lists /proc only when the kernel has handed out a pid since the last scan: this
// fake tree adds a process without one, which the memo then does not see until it is forgotten.
TEST(UnitProcScan, UntrackedServersAreSearchedForOnlyWhenAPidWasHandedOut)
{
    char tmpl[] = "/tmp/ralph-procscan-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    FakeProc proc(dir + "/proc");
    proc.Add(100, 5000, 4100);
    ProcFs fs(dir + "/proc");
    ServerScanMemo memo;
    ASSERT_EQ(fs.FindOpencodeServers(getuid(), &memo).size(), 1u);
    const std::string loadavg = test::ReadFile(dir + "/proc/loadavg");
    proc.Add(102, 5002, 4102);
    test::WriteFile(dir + "/proc/loadavg", loadavg);  // as if no pid had been handed out
    EXPECT_EQ(fs.FindOpencodeServers(getuid(), &memo).size(), 1u);
    test::WriteFile(dir + "/proc/loadavg", "0.00 0.00 0.00 1/1 102\n");
    EXPECT_EQ(fs.FindOpencodeServers(getuid(), &memo).size(), 2u);
    // Without a memo, or without a readable loadavg, every scan lists /proc.
    EXPECT_EQ(fs.FindOpencodeServers(getuid()).size(), 2u);
    proc.Add(104, 5004, 4104);
    std::filesystem::remove(dir + "/proc/loadavg");
    EXPECT_EQ(fs.FindOpencodeServers(getuid(), &memo).size(), 3u);
    EXPECT_EQ(fs.FindOpencodeServers(getuid(), &memo).size(), 3u);
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ralph::supervisor_test
