// The server supervisor's state machine without a real opencode: ServerSupervisor with a fake
// launcher and a tiny HTTP server standing in for /global/health (supervisor_test_support.h), on
// the real clock. The same on a FakeClock: supervisor_clock_test.cpp.
#include "tests/supervisor_test_support.h"

#include <fstream>

namespace ralph::supervisor_test {
namespace {

TEST_F(UnitServerSupervisor, StartsOnDemandWithAPasswordAndRecordsTheServer)
{
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    ServerSupervisor& s = Make();
    EXPECT_FALSE(s.Live());
    Result<ServerEndpoint> ep = Await(io_, s.Ensure());
    ASSERT_TRUE(ep.ok()) << ep.status().message();
    EXPECT_EQ(ep->port, http_->port());
    EXPECT_EQ(ep->password.size(), 32u);
    EXPECT_EQ(s.state(), ServerState::Running);
    ASSERT_TRUE(s.Live());

    ASSERT_EQ(launcher_->order.size(), 1u);
    const LaunchSpec& spec = launcher_->procs.at(launcher_->order[0]).spec;
    EXPECT_EQ(spec.program, fake_opencode_);
    EXPECT_EQ(spec.args, (std::vector<std::string>{"serve", "--hostname", "127.0.0.1", "--port", std::to_string(ports_.first)}));
    auto has = [&](const std::string& e) { return std::find(spec.env.begin(), spec.env.end(), e) != spec.env.end(); };
    EXPECT_TRUE(has("OPENCODE_SERVER_PASSWORD=" + ep->password));
    EXPECT_TRUE(has("OPENCODE_DISABLE_AUTOUPDATE=1"));
    EXPECT_TRUE(has("HOME=" + std::string(getenv("HOME"))));  // the daemon's environment passes through
    ASSERT_FALSE(http_->auth_headers.empty());
    EXPECT_EQ(http_->auth_headers[0], ep->AuthorizationHeader());

    json::object st = s.StatusJson();
    EXPECT_EQ(st.at("state"), "running");
    EXPECT_EQ(st.at("version"), "9.9.9");
    EXPECT_EQ(st.at("healthy"), true);
    EXPECT_EQ(st.at("pid"), launcher_->order[0]);
    auto rec = store_->GetManagedServer();
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->pid, launcher_->order[0]);
    EXPECT_EQ(rec->port, http_->port());
    EXPECT_EQ(states_, (std::vector<ServerState>{ServerState::Starting, ServerState::Running}));
}

TEST_F(UnitServerSupervisor, ConcurrentCallersShareOneStart)
{
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    ServerSupervisor& s = Make();
    std::vector<std::future<std::optional<Result<ServerEndpoint>>>> calls;
    for (int i = 0; i < 3; ++i) calls.push_back(SpawnFuture(io_, s.Ensure()));
    RunFor(io_, 30s, [&] {
        return std::all_of(calls.begin(), calls.end(), [](auto& f) { return f.wait_for(0s) == std::future_status::ready; });
    });
    for (auto& f : calls) {
        ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
        Result<ServerEndpoint> ep = *f.get();
        ASSERT_TRUE(ep.ok()) << ep.status().message();
        EXPECT_EQ(ep->port, http_->port());
    }
    EXPECT_EQ(launcher_->order.size(), 1u);
}

TEST_F(UnitServerSupervisor, CrashLoopBacksOffDoublingThenFatalUntilAnExplicitStart)
{
    settings_.restart_backoff_max = 200ms;
    settings_.start_limit_burst = 5;
    settings_.start_limit_interval = 1min;
    launcher_->on_launch = [](FakeLauncher& l, FakeLauncher::Proc& p) {
        l.Write(p, false, "boom\n");
        l.Exit(p.pid, ExitStatus{1, 0});
    };
    ServerSupervisor& s = Make();
    // The delay chosen for each restart, read the moment the back-off begins: it can only have
    // shrunk since, so it is an upper bound that does not depend on the machine's speed.
    std::vector<double> next_restart_in;
    s.Subscribe([&](ServerState st) {
        if (st == ServerState::Backoff) next_restart_in.push_back(s.StatusJson().at("next_restart_in").to_number<double>());
    });
    Status crashed = Await(io_, s.Ensure()).status();
    EXPECT_EQ(crashed.code(), kServerUnavailable) << "Ensure succeeded against a crashing server";
    EXPECT_NE(crashed.message().find("exited with status 1 before listening: boom"), std::string::npos)
        << crashed.message();
    RunFor(io_, 60s, [&] { return s.state() == ServerState::Fatal; });
    ASSERT_EQ(s.state(), ServerState::Fatal);
    ASSERT_EQ(launcher_->order.size(), 5u);
    std::vector<long long> gaps;
    for (std::size_t i = 1; i < launcher_->order.size(); ++i) {
        auto gap = launcher_->procs.at(launcher_->order[i]).at - launcher_->procs.at(launcher_->order[i - 1]).at;
        gaps.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(gap).count());
    }
    // Each restart waited at least its back-off, and no back-off was longer than the policy's
    // (doubling from 50 ms to the 200 ms cap). No upper bound on the gaps: a slow machine may
    // take longer between launches.
    std::vector<long long> expected{50, 100, 200, 200};
    ASSERT_EQ(next_restart_in.size(), expected.size());
    for (std::size_t i = 0; i < gaps.size(); ++i) {
        EXPECT_GE(gaps[i], expected[i]) << "restart " << i + 1;
        EXPECT_LE(next_restart_in[i], expected[i] / 1000.0) << "restart " << i + 1;
    }
    EXPECT_EQ(std::count(states_.begin(), states_.end(), ServerState::Backoff), 4);
    EXPECT_EQ(states_.back(), ServerState::Fatal);
    EXPECT_EQ(s.StatusJson().at("restarts"), 4);

    // Fatal stays fatal: no more launches, and Ensure says what to do.
    RunFor(io_, 400ms);
    EXPECT_EQ(launcher_->order.size(), 5u);
    Status fatal = Await(io_, s.Ensure()).status();
    EXPECT_EQ(fatal.code(), kServerUnavailable) << "Ensure succeeded while fatal";
    const std::string& m = fatal.message();
    EXPECT_NE(m.find("failed 5 times in 1m"), std::string::npos) << m;
    EXPECT_NE(m.find(s.log_path()), std::string::npos) << m;
    EXPECT_NE(m.find("ralph server start"), std::string::npos) << m;

    // An explicit start recovers.
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    EXPECT_TRUE(Await(io_, s.Start()).ok());
    EXPECT_EQ(s.state(), ServerState::Running);
    EXPECT_EQ(launcher_->order.size(), 6u);
    EXPECT_TRUE(s.Live());
}

TEST_F(UnitServerSupervisor, SilentServerIsDeclaredUnhealthyWithinIntervalTimesFailuresAndRestarted)
{
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    ServerSupervisor& s = Make();
    ASSERT_TRUE(Await(io_, s.Ensure()).ok());
    int first = launcher_->order.at(0);
    RunFor(io_, 30s, [&] { return http_->health_requests >= 2; });  // a couple of good periodic checks
    EXPECT_GE(http_->health_requests, 2);
    EXPECT_TRUE(s.Live());

    http_->hang = true;  // accepts connections, never answers
    auto hung_at = SteadyClock::now();
    std::optional<SteadyClock::time_point> unhealthy_at;
    s.Subscribe([&](ServerState st) {
        if (st == ServerState::Unhealthy && !unhealthy_at) unhealthy_at = SteadyClock::now();
    });
    RunFor(io_, 30s, [&] { return unhealthy_at.has_value(); });
    ASSERT_TRUE(unhealthy_at) << "never declared unhealthy";
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(*unhealthy_at - hung_at);
    // Declared after health_failures (3) unanswered checks, not sooner and not later; each waits
    // out its 100 ms deadline, two of them wholly after the hang began.
    EXPECT_EQ(http_->hung_requests, 3);
    EXPECT_GE(took.count(), 2 * 100) << "took " << took.count() << " ms";
    EXPECT_FALSE(s.Live());
    EXPECT_NE(s.StatusJson().at("last_error").as_string().find("timed out"), std::string::npos);

    // It is terminated (SIGTERM to its group) and a new one started after the back-off.
    http_->hang = false;
    RunFor(io_, 30s, [&] { return launcher_->order.size() == 2 && s.state() == ServerState::Running; });
    EXPECT_EQ(launcher_->SignalsTo(first, SIGTERM), 1);
    EXPECT_EQ(launcher_->order.size(), 2u);
    EXPECT_EQ(s.state(), ServerState::Running);
    EXPECT_EQ(s.StatusJson().at("restarts"), 1);
}

TEST_F(UnitServerSupervisor, CrashIsNoticedAtOnceAndRestarted)
{
    settings_.health_interval = 10s;  // the crash must not wait for a health check
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    ServerSupervisor& s = Make();
    ASSERT_TRUE(Await(io_, s.Ensure()).ok());
    launcher_->Exit(launcher_->order[0], ExitStatus{-1, SIGKILL});
    RunFor(io_, 30s, [&] { return s.state() != ServerState::Running; });
    EXPECT_EQ(s.state(), ServerState::Backoff);
    EXPECT_FALSE(s.Live());
    EXPECT_NE(s.StatusJson().at("last_error").as_string().find("killed by signal 9"), std::string::npos);
    RunFor(io_, 30s, [&] { return s.state() == ServerState::Running; });
    EXPECT_EQ(s.state(), ServerState::Running);
    EXPECT_EQ(launcher_->order.size(), 2u);
}

TEST_F(UnitServerSupervisor, BusyPortMovesOnToTheNextPortWithinOneStart)
{
    int launches = 0;
    launcher_->on_launch = [&](FakeLauncher& l, FakeLauncher::Proc& p) {
        if (launches++ == 0) {
            l.Write(p, false, "\x1b[91m\x1b[1mError: \x1b[0mUnexpected error\n\nServeError\n");
            l.Exit(p.pid, ExitStatus{1, 0});
        } else {
            Healthy(l, p);
        }
    };
    ServerSupervisor& s = Make();
    ASSERT_TRUE(Await(io_, s.Ensure()).ok());
    ASSERT_EQ(launcher_->order.size(), 2u);
    int first_port = launcher_->procs.at(launcher_->order[0]).Port();
    int second_port = launcher_->procs.at(launcher_->order[1]).Port();
    EXPECT_EQ(first_port, ports_.first);
    EXPECT_GT(second_port, first_port);
    EXPECT_EQ(std::count(states_.begin(), states_.end(), ServerState::Backoff), 0);
    EXPECT_EQ(s.StatusJson().at("restarts"), 0);
}

TEST_F(UnitServerSupervisor, RecordedFromLaunchSoASuccessorFindsOneThatNeverCameUp)
{
    launcher_->on_launch = [](FakeLauncher&, FakeLauncher::Proc&) {};  // never prints its listening line
    ServerSupervisor& s = Make();
    auto ensure = SpawnFuture(io_, s.Ensure());
    RunFor(io_, 30s, [&] { return !launcher_->order.empty(); });
    ASSERT_EQ(launcher_->order.size(), 1u);
    auto rec = store_->GetManagedServer();
    ASSERT_TRUE(rec) << "a daemon crashing now would leave an unknown server";
    EXPECT_EQ(rec->pid, launcher_->order[0]);
    EXPECT_EQ(s.state(), ServerState::Starting);
    EXPECT_TRUE(Await(io_, s.Stop()).ok());
    EXPECT_FALSE(store_->GetManagedServer());
    RunFor(io_, 30s, [&] { return ensure.wait_for(0s) == std::future_status::ready; });
    ASSERT_EQ(ensure.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(ensure.get()->status().code(), kServerUnavailable);
}

TEST_F(UnitServerSupervisor, OutputGoesToALogRotatedAtFiveMebibytes)
{
    std::string log = dir_ + "/opencode-server.log";
    {
        std::ofstream big(log);
        big << std::string(5 * 1024 * 1024 - 10, 'x') << "\n";
    }
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) {
        l.Write(p, false, "a line on stderr\n");
        Healthy(l, p);
    };
    ServerSupervisor& s = Make();
    EXPECT_EQ(s.log_path(), log);
    ASSERT_TRUE(Await(io_, s.Ensure()).ok());
    std::string text;
    RunFor(io_, 30s, [&] {
        std::ifstream in(log);
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        return text.find("a line on stderr") != std::string::npos && text.find("listening on") != std::string::npos;
    });
    EXPECT_GE(std::filesystem::file_size(log + ".1"), 5u * 1024 * 1024 - 10);
    EXPECT_LT(text.size(), 4096u);
    EXPECT_NE(text.find("a line on stderr"), std::string::npos) << text;
    EXPECT_NE(text.find("opencode server listening on"), std::string::npos) << text;
}

TEST_F(UnitServerSupervisor, StopDisposesThenSignalsTheGroupAndClearsTheRecord)
{
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    ServerSupervisor& s = Make();
    ASSERT_TRUE(Await(io_, s.Ensure()).ok());
    int pid = launcher_->order[0];
    ASSERT_TRUE(store_->GetManagedServer());
    EXPECT_TRUE(Await(io_, s.Stop()).ok());
    EXPECT_EQ(http_->dispose_requests, 1);
    EXPECT_EQ(launcher_->SignalsTo(pid, SIGTERM), 1);
    EXPECT_EQ(launcher_->SignalsTo(pid, SIGKILL), 0);
    EXPECT_EQ(s.state(), ServerState::Stopped);
    EXPECT_FALSE(store_->GetManagedServer());
    EXPECT_FALSE(s.Live());
    RunFor(io_, 300ms);
    EXPECT_EQ(launcher_->order.size(), 1u) << "nothing restarts a stopped server";
    EXPECT_TRUE(Await(io_, s.Stop()).ok());  // stopping a stopped server is fine
}

TEST_F(UnitServerSupervisor, ServerIgnoringSigtermIsKilledAfterTheStopTimeout)
{
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    launcher_->ignore_sigterm = true;
    ServerSupervisor& s = Make();
    ASSERT_TRUE(Await(io_, s.Ensure()).ok());
    int pid = launcher_->order[0];
    auto t0 = SteadyClock::now();
    EXPECT_TRUE(Await(io_, s.Stop()).ok());
    EXPECT_GE(SteadyClock::now() - t0, 300ms);
    EXPECT_EQ(launcher_->SignalsTo(pid, SIGKILL), 1);
    EXPECT_EQ(s.state(), ServerState::Stopped);
}

TEST_F(UnitServerSupervisor, ShutdownStopsTheServerAndRefusesLaterCalls)
{
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    ServerSupervisor& s = Make();
    ASSERT_TRUE(Await(io_, s.Ensure()).ok());
    Await(io_, s.Shutdown());
    Await(io_, s.Shutdown());  // idempotent
    EXPECT_EQ(s.state(), ServerState::Stopped);
    EXPECT_EQ(launcher_->SignalsTo(launcher_->order[0], SIGTERM), 1);
    EXPECT_EQ(Await(io_, s.Ensure()).status().code(), kServerUnavailable);
}

TEST_F(UnitServerSupervisor, OpencodeNotFoundSaysHowToFixIt)
{
    settings_.opencode = dir_ + "/no/such/opencode";
    ServerSupervisor& s = Make();
    Status missing = Await(io_, s.Ensure()).status();
    EXPECT_EQ(missing.code(), kServerUnavailable) << "started without an opencode";
    const std::string& m = missing.message();
    EXPECT_NE(m.find("opencode not found"), std::string::npos) << m;
    EXPECT_NE(m.find("server.opencode"), std::string::npos) << m;
    EXPECT_NE(m.find("RALPH_OPENCODE"), std::string::npos) << m;
    EXPECT_NE(m.find("opencode-ai@1.18.33"), std::string::npos) << m;
    EXPECT_EQ(s.state(), ServerState::Fatal);
    EXPECT_TRUE(launcher_->order.empty());

    settings_.opencode = "";
    hooks_.path_env = dir_ + "/empty-path";
    ServerSupervisor other(io_, settings_, *store_, dir_, hooks_);
    Status not_on_path = Await(io_, other.Ensure()).status();
    EXPECT_FALSE(not_on_path.ok()) << "started without an opencode on PATH";
    EXPECT_NE(not_on_path.message().find("opencode not found on PATH"), std::string::npos) << not_on_path.message();
    Await(io_, other.Shutdown());
}

TEST_F(UnitServerSupervisor, ExternalModeIsHealthCheckedNeverStartedOrStopped)
{
    settings_.mode = "external";
    settings_.url = "http://127.0.0.1:" + std::to_string(http_->port());
    ServerSupervisor& s = Make();
    EXPECT_EQ(s.state(), ServerState::External);
    Result<ServerEndpoint> ep = Await(io_, s.Ensure());
    ASSERT_TRUE(ep.ok()) << ep.status().message();
    EXPECT_EQ(ep->port, http_->port());
    EXPECT_TRUE(s.Live());
    EXPECT_EQ(s.StatusJson().at("healthy"), true);
    Status stopped = Await(io_, s.Stop());
    EXPECT_EQ(stopped.code(), kInvalidState) << "stopped an external server";
    EXPECT_NE(stopped.message().find("external"), std::string::npos) << stopped.message();
    EXPECT_EQ(Await(io_, s.Restart()).code(), kInvalidState);

    http_->hang = true;
    RunFor(io_, 30s, [&] { return !s.Live(); });
    EXPECT_FALSE(s.Live());
    EXPECT_EQ(s.StatusJson().at("state"), "external");
    EXPECT_EQ(s.StatusJson().at("healthy"), false);
    EXPECT_TRUE(launcher_->order.empty());
    EXPECT_TRUE(launcher_->signals.empty());
}

}  // namespace
}  // namespace ralph::supervisor_test
