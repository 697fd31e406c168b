// The server supervisor's policy and state machine without a real opencode: RestartPolicy with a
// fake clock, ServerSupervisor with a fake launcher and a tiny HTTP server standing in for
// /global/health, ReconcileLeftovers against real processes, /proc parsing, and the real
// POSIX launcher's promises about what a child inherits.
#include "common/errors.h"
#include "daemon/proc_scan.h"
#include "daemon/process.h"
#include "daemon/server_supervisor.h"
#include "daemon/store.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>

#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <future>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace ralph {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using asio::ip::tcp;

// ---------------------------------------------------------------------------------------------
// RestartPolicy

RestartPolicy::Limits Limits(Millis initial, Millis max, int burst, Millis interval, Millis stable = 60s)
{
    return RestartPolicy::Limits{initial, max, burst, interval, stable};
}

TEST(UnitRestartPolicy, BackoffDoublesToTheCapThenFatalAtTheStartLimit)
{
    RestartPolicy p(Limits(1s, 8s, 7, 5min));
    SteadyClock::time_point t{};
    std::vector<long long> delays;
    for (;;) {
        p.OnStart(t);
        t += 100ms;  // crashes at once
        auto d = p.OnFailure(t, 0ms);
        if (!d) break;
        delays.push_back(std::chrono::duration_cast<std::chrono::seconds>(*d).count());
        t += *d;
    }
    EXPECT_EQ(delays, (std::vector<long long>{1, 2, 4, 8, 8, 8}));
    EXPECT_EQ(p.StartsInWindow(t), 7);

    // An explicit start forgets the history: the next failure waits 1 s again.
    p.Reset();
    p.OnStart(t);
    EXPECT_EQ(p.OnFailure(t + 1s, 0ms), std::optional<Millis>(1s));
}

TEST(UnitRestartPolicy, StableRunResetsTheBackoff)
{
    RestartPolicy p(Limits(1s, 60s, 100, 5min));
    SteadyClock::time_point t{};
    for (int i = 0; i < 4; ++i) {
        p.OnStart(t);
        t += *p.OnFailure(t, 0ms);
    }
    p.OnStart(t);
    EXPECT_EQ(p.OnFailure(t + 5s, 5s), std::optional<Millis>(16s));  // not stable yet: keeps doubling
    p.OnStart(t + 30s);
    EXPECT_EQ(p.OnFailure(t + 100s, 61s), std::optional<Millis>(1s));  // ran a stable minute
}

TEST(UnitRestartPolicy, StartsOutsideTheWindowDoNotCount)
{
    RestartPolicy p(Limits(1s, 1s, 3, 1min));
    SteadyClock::time_point t{};
    for (int i = 0; i < 10; ++i) {  // a crash every 40 s: never 3 starts within a minute
        p.OnStart(t);
        ASSERT_TRUE(p.OnFailure(t + 39s, 39s).has_value()) << "failure " << i;
        t += 40s;
    }
    p.OnStart(t);
    p.OnStart(t + 1s);
    p.OnStart(t + 2s);
    EXPECT_FALSE(p.OnFailure(t + 3s, 0ms).has_value());
}

// ---------------------------------------------------------------------------------------------
// Test doubles

/// Runs a coroutine on `io` until it finishes; rethrows its exception.
template <typename T>
T Await(asio::io_context& io, asio::awaitable<T> a, std::chrono::milliseconds limit = 20s)
{
    auto future = asio::co_spawn(io, std::move(a), asio::use_future);
    auto deadline = SteadyClock::now() + limit;
    while (future.wait_for(0s) != std::future_status::ready) {
        if (SteadyClock::now() > deadline) throw std::runtime_error("coroutine did not finish in time");
        if (io.stopped()) io.restart();
        io.run_one_for(10ms);
    }
    return future.get();
}

void RunFor(asio::io_context& io, std::chrono::milliseconds d, const std::function<bool()>& until = {})
{
    auto deadline = SteadyClock::now() + d;
    while (SteadyClock::now() < deadline) {
        if (until && until()) return;
        if (io.stopped()) io.restart();
        io.run_one_for(5ms);
    }
}

/// A launcher whose "processes" are scripted by the test: they write to real pipes and exit
/// when the test (or a SIGTERM/SIGKILL) says so.
class FakeLauncher : public ProcessLauncher {
public:
    struct Proc {
        int pid{0};
        int out_w{-1}, err_w{-1};
        bool exited{false};
        LaunchSpec spec;
        SteadyClock::time_point at;
        int Port() const { return std::stoi(spec.args.back()); }
    };

    explicit FakeLauncher(asio::io_context& io) : io_(io) {}
    ~FakeLauncher() override
    {
        for (auto& [pid, p] : procs)
            for (int fd : {p.out_w, p.err_w})
                if (fd >= 0) close(fd);
    }

    /// Called for every launch after the pipes exist (the supervisor has not started reading yet).
    std::function<void(FakeLauncher&, Proc&)> on_launch;
    std::map<int, Proc> procs;
    std::vector<int> order;                      ///< pids in launch order
    std::vector<std::pair<int, int>> signals;    ///< (pid, signal)
    bool ignore_sigterm{false};

    std::variant<LaunchedProcess, std::string> Launch(const LaunchSpec& spec) override
    {
        int out[2], err[2];
        if (pipe2(out, O_CLOEXEC | O_NONBLOCK) != 0 || pipe2(err, O_CLOEXEC | O_NONBLOCK) != 0) return "pipe failed";
        Proc p;
        p.pid = next_pid_++;  // beyond any real pid_max: nothing real is ever named
        p.out_w = out[1];
        p.err_w = err[1];
        p.spec = spec;
        p.at = SteadyClock::now();
        procs[p.pid] = p;
        order.push_back(p.pid);
        if (on_launch) on_launch(*this, procs[p.pid]);
        return LaunchedProcess{p.pid, out[0], err[0]};
    }

    void SignalGroup(int pid, int sig) override
    {
        signals.emplace_back(pid, sig);
        if (sig == SIGKILL || (sig == SIGTERM && !ignore_sigterm)) Exit(pid, ExitStatus{-1, sig});
    }

    void WatchExit(int pid, std::function<void(ExitStatus)> on_exit) override
    {
        if (auto it = early_.find(pid); it != early_.end()) {
            asio::post(io_, [on_exit, s = it->second] { on_exit(s); });
            early_.erase(it);
            return;
        }
        watchers_[pid] = std::move(on_exit);
    }

    void Write(Proc& p, bool to_stdout, const std::string& text)
    {
        int fd = to_stdout ? p.out_w : p.err_w;
        if (fd >= 0) {
            EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
        }
    }

    void Exit(int pid, ExitStatus status)
    {
        Proc& p = procs.at(pid);
        if (p.exited) return;
        p.exited = true;
        close(p.out_w);
        close(p.err_w);
        p.out_w = p.err_w = -1;
        asio::post(io_, [this, pid, status] {
            if (auto it = watchers_.find(pid); it != watchers_.end()) {
                auto cb = std::move(it->second);
                watchers_.erase(it);
                cb(status);
            } else {
                early_[pid] = status;
            }
        });
    }

    int SignalsTo(int pid, int sig) const
    {
        return static_cast<int>(std::count(signals.begin(), signals.end(), std::make_pair(pid, sig)));
    }

private:
    asio::io_context& io_;
    int next_pid_{5'000'000};
    std::map<int, std::function<void(ExitStatus)>> watchers_;
    std::map<int, ExitStatus> early_;
};

/// Stands in for opencode's HTTP side: answers /global/health (healthy) and /global/dispose,
/// or, once `hang` is set, accepts connections and never answers.
class FakeOpencodeHttp {
public:
    explicit FakeOpencodeHttp(asio::io_context& io) : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
    {
        asio::co_spawn(io, Accept(), asio::detached);
    }
    ~FakeOpencodeHttp()
    {
        boost::system::error_code ec;
        acceptor_.close(ec);
        for (auto& s : held_) s->close(ec);
    }
    int port() const { return acceptor_.local_endpoint().port(); }

    bool hang{false};
    int hung_requests{0};  ///< requests read while hung (left unanswered)
    int health_requests{0};
    int dispose_requests{0};
    std::vector<std::string> auth_headers;

private:
    asio::awaitable<void> Accept()
    {
        for (;;) {
            auto [ec, sock] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
            auto s = std::make_shared<tcp::socket>(std::move(sock));
            held_.push_back(s);
            asio::co_spawn(acceptor_.get_executor(), Serve(s), asio::detached);
        }
    }
    asio::awaitable<void> Serve(std::shared_ptr<tcp::socket> s)
    {
        std::string req;
        auto [ec, n] = co_await asio::async_read_until(*s, asio::dynamic_buffer(req), "\r\n\r\n",
                                                       asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        if (hang) {  // hung: the connection stays open, unanswered
            ++hung_requests;
            co_return;
        }
        std::string body;
        if (req.rfind("GET /global/health", 0) == 0) {
            ++health_requests;
            body = R"({"healthy":true,"version":"9.9.9"})";
        } else if (req.rfind("POST /global/dispose", 0) == 0) {
            ++dispose_requests;
            body = "true";
        }
        auto auth = req.find("Authorization: ");
        auth_headers.push_back(auth == std::string::npos ? "" : req.substr(auth + 15, req.find("\r\n", auth) - auth - 15));
        std::string reply = std::string(body.empty() ? "HTTP/1.1 404 Not Found" : "HTTP/1.1 200 OK") +
                            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\nConnection: close\r\n\r\n" + body;
        co_await asio::async_write(*s, asio::buffer(reply), asio::as_tuple(asio::use_awaitable));
        boost::system::error_code ignored;
        s->shutdown(tcp::socket::shutdown_both, ignored);
    }

    tcp::acceptor acceptor_;
    std::vector<std::shared_ptr<tcp::socket>> held_;
};

class UnitServerSupervisor : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/ralph-supervisor-XXXXXX";
        dir_ = mkdtemp(tmpl);
        store_ = std::make_unique<RunStore>(dir_ + "/ralph.db");
        launcher_ = std::make_shared<FakeLauncher>(io_);
        http_ = std::make_unique<FakeOpencodeHttp>(io_);
        // A file that exists and is executable: the fake launcher never runs it.
        fake_opencode_ = dir_ + "/opencode";
        std::filesystem::copy_file("/bin/true", fake_opencode_);
        settings_.opencode = fake_opencode_;
        // The supervisor probes its ports before a launch: free ones, reserved for this test.
        ASSERT_GT(ports_.first, 0);
        settings_.port = ports_.first;
        settings_.port_min = ports_.first;
        settings_.port_max = ports_.first + 19;
        settings_.health_interval = 100ms;
        settings_.health_failures = 3;
        settings_.stop_timeout = 300ms;
        hooks_.launcher = launcher_;
        hooks_.initial_backoff = 50ms;
        hooks_.start_timeout = 5s;
    }
    void TearDown() override
    {
        if (sup_) {
            Await(io_, sup_->Shutdown());
            sup_.reset();
        }
        http_.reset();
        RunFor(io_, 20ms);
        store_.reset();
        std::filesystem::remove_all(dir_);
    }

    ServerSupervisor& Make()
    {
        sup_ = std::make_unique<ServerSupervisor>(io_, settings_, *store_, dir_, hooks_);
        sup_->Subscribe([this](ServerState s) { states_.push_back(s); });
        return *sup_;
    }

    /// Launch behaviour: print the listening line for the fake HTTP server.
    void Healthy(FakeLauncher& l, FakeLauncher::Proc& p)
    {
        l.Write(p, true, "opencode server listening on http://127.0.0.1:" + std::to_string(http_->port()) + "\n");
    }

    test::PortBlock ports_{20};
    asio::io_context io_;
    std::string dir_, fake_opencode_;
    std::unique_ptr<RunStore> store_;
    std::shared_ptr<FakeLauncher> launcher_;
    std::unique_ptr<FakeOpencodeHttp> http_;
    ServerSettings settings_;
    SupervisorHooks hooks_;
    std::unique_ptr<ServerSupervisor> sup_;
    std::vector<ServerState> states_;
};

TEST_F(UnitServerSupervisor, StartsOnDemandWithAPasswordAndRecordsTheServer)
{
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    ServerSupervisor& s = Make();
    EXPECT_FALSE(s.Live());
    ServerEndpoint ep = Await(io_, s.Ensure());
    EXPECT_EQ(ep.port, http_->port());
    EXPECT_EQ(ep.password.size(), 32u);
    EXPECT_EQ(s.state(), ServerState::Running);
    ASSERT_TRUE(s.Live());

    ASSERT_EQ(launcher_->order.size(), 1u);
    const LaunchSpec& spec = launcher_->procs.at(launcher_->order[0]).spec;
    EXPECT_EQ(spec.program, fake_opencode_);
    EXPECT_EQ(spec.args, (std::vector<std::string>{"serve", "--hostname", "127.0.0.1", "--port", std::to_string(ports_.first)}));
    auto has = [&](const std::string& e) { return std::find(spec.env.begin(), spec.env.end(), e) != spec.env.end(); };
    EXPECT_TRUE(has("OPENCODE_SERVER_PASSWORD=" + ep.password));
    EXPECT_TRUE(has("OPENCODE_DISABLE_AUTOUPDATE=1"));
    EXPECT_TRUE(has("HOME=" + std::string(getenv("HOME"))));  // the daemon's environment passes through
    ASSERT_FALSE(http_->auth_headers.empty());
    EXPECT_EQ(http_->auth_headers[0], ep.AuthorizationHeader());

    json::object st = s.Status();
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
    std::vector<std::future<ServerEndpoint>> calls;
    for (int i = 0; i < 3; ++i) calls.push_back(asio::co_spawn(io_, s.Ensure(), asio::use_future));
    RunFor(io_, 30s, [&] {
        return std::all_of(calls.begin(), calls.end(), [](auto& f) { return f.wait_for(0s) == std::future_status::ready; });
    });
    for (auto& f : calls) EXPECT_EQ(f.get().port, http_->port());
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
        if (st == ServerState::Backoff) next_restart_in.push_back(s.Status().at("next_restart_in").to_number<double>());
    });
    try {
        Await(io_, s.Ensure());
        ADD_FAILURE() << "Ensure succeeded against a crashing server";
    } catch (const RpcError& e) {
        EXPECT_EQ(e.code, kServerUnavailable);
        EXPECT_NE(std::string(e.what()).find("exited with status 1 before listening: boom"), std::string::npos) << e.what();
    }
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
    EXPECT_EQ(s.Status().at("restarts"), 4);

    // Fatal stays fatal: no more launches, and Ensure says what to do.
    RunFor(io_, 400ms);
    EXPECT_EQ(launcher_->order.size(), 5u);
    try {
        Await(io_, s.Ensure());
        ADD_FAILURE() << "Ensure succeeded while fatal";
    } catch (const RpcError& e) {
        std::string m = e.what();
        EXPECT_EQ(e.code, kServerUnavailable);
        EXPECT_NE(m.find("failed 5 times in 1m"), std::string::npos) << m;
        EXPECT_NE(m.find(s.log_path()), std::string::npos) << m;
        EXPECT_NE(m.find("ralph server start"), std::string::npos) << m;
    }

    // An explicit start recovers.
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    Await(io_, s.Start());
    EXPECT_EQ(s.state(), ServerState::Running);
    EXPECT_EQ(launcher_->order.size(), 6u);
    EXPECT_TRUE(s.Live());
}

TEST_F(UnitServerSupervisor, SilentServerIsDeclaredUnhealthyWithinIntervalTimesFailuresAndRestarted)
{
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    ServerSupervisor& s = Make();
    Await(io_, s.Ensure());
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
    EXPECT_NE(s.Status().at("last_error").as_string().find("timed out"), std::string::npos);

    // It is terminated (SIGTERM to its group) and a new one started after the back-off.
    http_->hang = false;
    RunFor(io_, 30s, [&] { return launcher_->order.size() == 2 && s.state() == ServerState::Running; });
    EXPECT_EQ(launcher_->SignalsTo(first, SIGTERM), 1);
    EXPECT_EQ(launcher_->order.size(), 2u);
    EXPECT_EQ(s.state(), ServerState::Running);
    EXPECT_EQ(s.Status().at("restarts"), 1);
}

TEST_F(UnitServerSupervisor, CrashIsNoticedAtOnceAndRestarted)
{
    settings_.health_interval = 10s;  // the crash must not wait for a health check
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    ServerSupervisor& s = Make();
    Await(io_, s.Ensure());
    launcher_->Exit(launcher_->order[0], ExitStatus{-1, SIGKILL});
    RunFor(io_, 30s, [&] { return s.state() != ServerState::Running; });
    EXPECT_EQ(s.state(), ServerState::Backoff);
    EXPECT_FALSE(s.Live());
    EXPECT_NE(s.Status().at("last_error").as_string().find("killed by signal 9"), std::string::npos);
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
    Await(io_, s.Ensure());
    ASSERT_EQ(launcher_->order.size(), 2u);
    int first_port = launcher_->procs.at(launcher_->order[0]).Port();
    int second_port = launcher_->procs.at(launcher_->order[1]).Port();
    EXPECT_EQ(first_port, ports_.first);
    EXPECT_GT(second_port, first_port);
    EXPECT_EQ(std::count(states_.begin(), states_.end(), ServerState::Backoff), 0);
    EXPECT_EQ(s.Status().at("restarts"), 0);
}

TEST_F(UnitServerSupervisor, RecordedFromLaunchSoASuccessorFindsOneThatNeverCameUp)
{
    launcher_->on_launch = [](FakeLauncher&, FakeLauncher::Proc&) {};  // never prints its listening line
    ServerSupervisor& s = Make();
    auto ensure = asio::co_spawn(io_, s.Ensure(), asio::use_future);
    RunFor(io_, 30s, [&] { return !launcher_->order.empty(); });
    ASSERT_EQ(launcher_->order.size(), 1u);
    auto rec = store_->GetManagedServer();
    ASSERT_TRUE(rec) << "a daemon crashing now would leave an unknown server";
    EXPECT_EQ(rec->pid, launcher_->order[0]);
    EXPECT_EQ(s.state(), ServerState::Starting);
    Await(io_, s.Stop());
    EXPECT_FALSE(store_->GetManagedServer());
    RunFor(io_, 30s, [&] { return ensure.wait_for(0s) == std::future_status::ready; });
    EXPECT_THROW(ensure.get(), RpcError);
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
    Await(io_, s.Ensure());
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
    Await(io_, s.Ensure());
    int pid = launcher_->order[0];
    ASSERT_TRUE(store_->GetManagedServer());
    Await(io_, s.Stop());
    EXPECT_EQ(http_->dispose_requests, 1);
    EXPECT_EQ(launcher_->SignalsTo(pid, SIGTERM), 1);
    EXPECT_EQ(launcher_->SignalsTo(pid, SIGKILL), 0);
    EXPECT_EQ(s.state(), ServerState::Stopped);
    EXPECT_FALSE(store_->GetManagedServer());
    EXPECT_FALSE(s.Live());
    RunFor(io_, 300ms);
    EXPECT_EQ(launcher_->order.size(), 1u) << "nothing restarts a stopped server";
    Await(io_, s.Stop());  // stopping a stopped server is fine
}

TEST_F(UnitServerSupervisor, ServerIgnoringSigtermIsKilledAfterTheStopTimeout)
{
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    launcher_->ignore_sigterm = true;
    ServerSupervisor& s = Make();
    Await(io_, s.Ensure());
    int pid = launcher_->order[0];
    auto t0 = SteadyClock::now();
    Await(io_, s.Stop());
    EXPECT_GE(SteadyClock::now() - t0, 300ms);
    EXPECT_EQ(launcher_->SignalsTo(pid, SIGKILL), 1);
    EXPECT_EQ(s.state(), ServerState::Stopped);
}

TEST_F(UnitServerSupervisor, ShutdownStopsTheServerAndRefusesLaterCalls)
{
    launcher_->on_launch = [this](FakeLauncher& l, FakeLauncher::Proc& p) { Healthy(l, p); };
    ServerSupervisor& s = Make();
    Await(io_, s.Ensure());
    Await(io_, s.Shutdown());
    Await(io_, s.Shutdown());  // idempotent
    EXPECT_EQ(s.state(), ServerState::Stopped);
    EXPECT_EQ(launcher_->SignalsTo(launcher_->order[0], SIGTERM), 1);
    EXPECT_THROW(Await(io_, s.Ensure()), RpcError);
}

TEST_F(UnitServerSupervisor, OpencodeNotFoundSaysHowToFixIt)
{
    settings_.opencode = dir_ + "/no/such/opencode";
    ServerSupervisor& s = Make();
    try {
        Await(io_, s.Ensure());
        ADD_FAILURE() << "started without an opencode";
    } catch (const RpcError& e) {
        std::string m = e.what();
        EXPECT_EQ(e.code, kServerUnavailable);
        EXPECT_NE(m.find("opencode not found"), std::string::npos) << m;
        EXPECT_NE(m.find("server.opencode"), std::string::npos) << m;
        EXPECT_NE(m.find("RALPH_OPENCODE"), std::string::npos) << m;
        EXPECT_NE(m.find("opencode-ai@1.18.33"), std::string::npos) << m;
    }
    EXPECT_EQ(s.state(), ServerState::Fatal);
    EXPECT_TRUE(launcher_->order.empty());

    settings_.opencode = "";
    hooks_.path_env = dir_ + "/empty-path";
    ServerSupervisor other(io_, settings_, *store_, dir_, hooks_);
    try {
        Await(io_, other.Ensure());
        ADD_FAILURE() << "started without an opencode on PATH";
    } catch (const RpcError& e) {
        EXPECT_NE(std::string(e.what()).find("opencode not found on PATH"), std::string::npos) << e.what();
    }
    Await(io_, other.Shutdown());
}

TEST_F(UnitServerSupervisor, ExternalModeIsHealthCheckedNeverStartedOrStopped)
{
    settings_.mode = "external";
    settings_.url = "http://127.0.0.1:" + std::to_string(http_->port());
    ServerSupervisor& s = Make();
    EXPECT_EQ(s.state(), ServerState::External);
    ServerEndpoint ep = Await(io_, s.Ensure());
    EXPECT_EQ(ep.port, http_->port());
    EXPECT_TRUE(s.Live());
    EXPECT_EQ(s.Status().at("healthy"), true);
    try {
        Await(io_, s.Stop());
        ADD_FAILURE() << "stopped an external server";
    } catch (const RpcError& e) {
        EXPECT_EQ(e.code, kInvalidState);
        EXPECT_NE(std::string(e.what()).find("external"), std::string::npos);
    }
    EXPECT_THROW(Await(io_, s.Restart()), RpcError);

    http_->hang = true;
    RunFor(io_, 30s, [&] { return !s.Live(); });
    EXPECT_FALSE(s.Live());
    EXPECT_EQ(s.Status().at("state"), "external");
    EXPECT_EQ(s.Status().at("healthy"), false);
    EXPECT_TRUE(launcher_->order.empty());
    EXPECT_TRUE(launcher_->signals.empty());
}

// ---------------------------------------------------------------------------------------------
// ReconcileLeftovers against real processes

pid_t Spawn(const std::vector<std::string>& argv, bool new_session)
{
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    if (new_session) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    pid_t pid = -1;
    EXPECT_EQ(posix_spawn(&pid, args[0], nullptr, &attr, args.data(), environ), 0);
    posix_spawnattr_destroy(&attr);
    return pid;
}

/// Exists and is not a zombie.
bool Running(pid_t pid)
{
    auto st = ProcFs().Stat(pid);
    return st && st->state != 'Z';
}

class UnitReconcile : public UnitServerSupervisor {
protected:
    void TearDown() override
    {
        for (pid_t pid : children_) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
        UnitServerSupervisor::TearDown();
    }
    pid_t Child(const std::vector<std::string>& argv)
    {
        pid_t pid = Spawn(argv, true);
        children_.push_back(pid);
        EXPECT_TRUE(WaitForStat(pid));
        return pid;
    }
    static bool WaitForStat(pid_t pid)
    {
        for (int i = 0; i < 100; ++i) {
            // After exec, the command line is the new program's.
            if (!ProcFs().Cmdline(pid).empty() && ProcFs().Cmdline(pid)[0] != "") return true;
            usleep(10000);
        }
        return false;
    }
    std::vector<pid_t> children_;
};

TEST_F(UnitReconcile, ReusedPidWithAnotherStartTimeIsLeftAlone)
{
    // The recorded server is gone and its pid now belongs to someone else's process.
    std::string opencode_named = dir_ + "/opencode";
    std::filesystem::remove(opencode_named);
    std::filesystem::copy_file("/bin/sleep", opencode_named);
    pid_t pid = Child({opencode_named, "30"});  // even an opencode command line does not matter
    auto st = ProcFs().Stat(pid);
    ASSERT_TRUE(st);
    store_->SetManagedServer(ManagedServerRecord{pid, st->start_time + 1, ports_.first, NowMillis()});
    ServerSupervisor& s = Make();
    s.ReconcileLeftovers();
    usleep(200000);
    EXPECT_TRUE(Running(pid));
    EXPECT_FALSE(store_->GetManagedServer()) << "the stale record is cleared";
}

TEST_F(UnitReconcile, SameStartTimeButNotOpencodeIsLeftAlone)
{
    pid_t pid = Child({"/bin/sleep", "30"});
    auto st = ProcFs().Stat(pid);
    ASSERT_TRUE(st);
    store_->SetManagedServer(ManagedServerRecord{pid, st->start_time, ports_.first, NowMillis()});
    Make().ReconcileLeftovers();
    usleep(200000);
    EXPECT_TRUE(Running(pid));
    EXPECT_FALSE(store_->GetManagedServer());
}

TEST_F(UnitReconcile, TheRecordedServerStillRunningIsStopped)
{
    std::string opencode_named = dir_ + "/opencode";
    std::filesystem::remove(opencode_named);
    std::filesystem::copy_file("/bin/sleep", opencode_named);
    pid_t pid = Child({opencode_named, "30"});
    auto st = ProcFs().Stat(pid);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->pgid, pid) << "started in its own session, like the daemon does";
    store_->SetManagedServer(ManagedServerRecord{pid, st->start_time, ports_.first, NowMillis()});
    Make().ReconcileLeftovers();
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    children_.clear();
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    EXPECT_FALSE(store_->GetManagedServer());
}

// ---------------------------------------------------------------------------------------------
// /proc parsing

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
    EXPECT_NE(out.find("SigIgn:\t0000000000000000"), std::string::npos) << out;
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
}  // namespace ralph
