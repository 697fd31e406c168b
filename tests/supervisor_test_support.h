// Test doubles and fixtures shared by the server supervisor's tests: a scripted ProcessLauncher,
// a tiny HTTP server standing in for opencode's /global/health and /global/dispose, the
// UnitServerSupervisor fixture, and helpers to run coroutines and spawn real processes.
// Everything is inline in a named namespace: several test files use the same fixtures.
#pragma once

#include "common/clock.h"
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
#include <future>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace ralph::supervisor_test {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using asio::ip::tcp;

template <typename T>
asio::awaitable<std::optional<T>> InOptional(asio::awaitable<T> a)
{
    co_return co_await std::move(a);
}

/// co_spawn with a future for any value type: co_spawn's own future needs a default-constructible
/// value, which Result<T> is not, so the value comes in an optional (always set). TakeFuture gets it.
template <typename T>
auto SpawnFuture(asio::io_context& io, asio::awaitable<T> a)
{
    if constexpr (std::is_void_v<T>) return asio::co_spawn(io, std::move(a), asio::use_future);
    else return asio::co_spawn(io, InOptional(std::move(a)), asio::use_future);
}
template <typename T, typename Future>
T TakeFuture(Future& f)
{
    if constexpr (std::is_void_v<T>) f.get();
    else return std::move(*f.get());
}

/// Runs a coroutine on `io` until it finishes; rethrows its exception.
template <typename T>
inline T Await(asio::io_context& io, asio::awaitable<T> a, std::chrono::milliseconds limit = 20s)
{
    auto future = SpawnFuture(io, std::move(a));
    auto deadline = SteadyClock::now() + limit;
    while (future.wait_for(0s) != std::future_status::ready) {
        if (SteadyClock::now() > deadline) throw std::runtime_error("coroutine did not finish in time");
        if (io.stopped()) io.restart();
        io.run_one_for(10ms);
    }
    return TakeFuture<T>(future);
}

inline void RunFor(asio::io_context& io, std::chrono::milliseconds d, const std::function<bool()>& until = {})
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

/// Stands in for opencode's HTTP side: answers /global/health (healthy, or 503 once `unhealthy`
/// is set) and /global/dispose, or, once `hang` is set, accepts connections and never answers.
class FakeOpencodeHttp {
public:
    explicit FakeOpencodeHttp(asio::io_context& io) : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
    {
        asio::co_spawn(io, Accept(alive_), asio::detached);
    }
    ~FakeOpencodeHttp()
    {
        *alive_ = false;  // an Accept() that has not started yet never touches this object
        boost::system::error_code ec;
        acceptor_.close(ec);
        for (auto& s : held_) s->close(ec);
    }
    int port() const { return acceptor_.local_endpoint().port(); }

    bool hang{false};
    bool unhealthy{false};
    int hung_requests{0};  ///< requests read while hung (left unanswered)
    int health_requests{0};
    int dispose_requests{0};
    std::vector<std::string> auth_headers;

private:
    asio::awaitable<void> Accept(std::shared_ptr<bool> alive)
    {
        if (!*alive) co_return;
        for (;;) {
            auto [ec, sock] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec || !*alive) co_return;
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
        std::string status = "HTTP/1.1 200 OK";
        if (req.rfind("GET /global/health", 0) == 0) {
            ++health_requests;
            body = R"({"healthy":true,"version":"9.9.9"})";
            if (unhealthy) status = "HTTP/1.1 503 Service Unavailable";
        } else if (req.rfind("POST /global/dispose", 0) == 0) {
            ++dispose_requests;
            body = "true";
        }
        auto auth = req.find("Authorization: ");
        auth_headers.push_back(auth == std::string::npos ? "" : req.substr(auth + 15, req.find("\r\n", auth) - auth - 15));
        std::string reply = std::string(body.empty() ? "HTTP/1.1 404 Not Found" : status) +
                            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\nConnection: close\r\n\r\n" + body;
        co_await asio::async_write(*s, asio::buffer(reply), asio::as_tuple(asio::use_awaitable));
        boost::system::error_code ignored;
        s->shutdown(tcp::socket::shutdown_both, ignored);
    }

    tcp::acceptor acceptor_;
    std::vector<std::shared_ptr<tcp::socket>> held_;
    std::shared_ptr<bool> alive_{std::make_shared<bool>(true)};
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
            ShutDown(*sup_);
            sup_.reset();
        }
        http_.reset();
        RunFor(io_, 20ms);
        store_.reset();
        std::filesystem::remove_all(dir_);
    }

    virtual void ShutDown(ServerSupervisor& s) { Await(io_, s.Shutdown()); }

    ServerSupervisor& Make()
    {
        sup_ = std::make_unique<ServerSupervisor>(io_, settings_, *store_, dir_, hooks_, *clock_);
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
    Clock* clock_{&SystemClock()};  ///< the supervisor's clock
    std::unique_ptr<ServerSupervisor> sup_;
    std::vector<ServerState> states_;
};

inline pid_t Spawn(const std::vector<std::string>& argv, bool new_session)
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
inline bool Running(pid_t pid)
{
    auto st = ProcFs().Stat(pid);
    return st && st->state != 'Z';
}

}  // namespace ralph::supervisor_test
