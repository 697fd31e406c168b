#include "tests/harness.h"

#include "common/spawn.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <netinet/in.h>
#include <sys/file.h>
#include <fstream>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace ralph::test {

namespace fs = std::filesystem;

pid_t SpawnProgram(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                   const std::string& stdout_path, const std::string& stderr_path, const std::string& cwd)
{
    try {
        return SpawnProcess({argv, env, cwd, stdout_path, stderr_path});
    } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        return -1;
    }
}

int WaitExit(pid_t pid, std::chrono::milliseconds timeout)
{
    if (pid <= 0) return -2;  // never started; waitpid(-1) would reap any child
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0) return -2;
        if (std::chrono::steady_clock::now() > deadline) return -1;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

CommandResult RunProgram(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                         const std::string& cwd, std::chrono::seconds timeout)
{
    char tmpl[] = "/tmp/ralph-run-XXXXXX";
    std::string tmp = mkdtemp(tmpl);
    pid_t pid = SpawnProgram(argv, env, tmp + "/out", tmp + "/err", cwd);
    CommandResult r;
    r.exit_code = WaitExit(pid, timeout);
    if (r.exit_code == -1) {
        kill(pid, SIGKILL);
        WaitExit(pid, std::chrono::seconds(5));
        ADD_FAILURE() << "timed out after " << timeout.count() << "s: " << argv[0];
    }
    r.out = ReadFile(tmp + "/out");
    r.err = ReadFile(tmp + "/err");
    fs::remove_all(tmp);
    return r;
}

std::string ReadFile(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void WriteFile(const std::string& path, const std::string& text)
{
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

int RawConnect(const std::string& path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool PathExists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

bool ProcessAlive(pid_t pid)
{
    std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    if (stat.empty()) return false;
    auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!cond()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

std::vector<boost::json::object> JsonLines(const std::string& out)
{
    std::vector<boost::json::object> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        boost::system::error_code ec;
        boost::json::value v = boost::json::parse(line, ec);
        EXPECT_FALSE(ec) << "not one JSON object per line: " << line;
        if (!ec && v.is_object()) lines.push_back(v.as_object());
    }
    return lines;
}

namespace {

/// True when we can bind and listen on 127.0.0.1:port now (as the daemon's own port probe does).
bool LoopbackPortFree(int port)
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && listen(fd, 1) == 0;
    close(fd);
    return free;
}

}  // namespace

PortBlock::PortBlock(int count)
{
    // Blocks of 50 from 20000 to 32000: below Linux's default ephemeral range (32768-60999), so
    // outgoing connections do not land in them. Start at a random block to spread the lock files.
    constexpr int kFirst = 20000, kSize = 50, kBlocks = 240;
    if (count < 1 || count > kSize) {
        ADD_FAILURE() << "PortBlock: " << count << " ports asked for; a block has 1 to " << kSize;
        return;
    }
    std::string lock_dir = "/tmp/ralph-test-ports";
    std::error_code ec;
    fs::create_directories(lock_dir, ec);
    int start = static_cast<int>((getpid() * 7919 + std::chrono::steady_clock::now().time_since_epoch().count()) % kBlocks);
    for (int i = 0; i < kBlocks; ++i) {
        int block = (start + i) % kBlocks;
        int base = kFirst + block * kSize;
        int fd = open((lock_dir + "/" + std::to_string(base)).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) continue;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            continue;
        }
        bool all_free = true;
        for (int p = base; p < base + count && all_free; ++p) all_free = LoopbackPortFree(p);
        if (!all_free) {
            close(fd);
            continue;
        }
        lock_fd_ = fd;
        first = base;
        return;
    }
    ADD_FAILURE() << "PortBlock: no block of " << count << " free loopback ports between " << kFirst << " and "
                  << kFirst + kBlocks * kSize << " (or " << lock_dir << " is not writable)";
}

PortBlock::~PortBlock()
{
    if (lock_fd_ >= 0) close(lock_fd_);
}

TestEnv::TestEnv()
{
    // Short: a Unix socket path must fit in 108 bytes.
    char tmpl[] = "/tmp/rt-XXXXXX";
    dir = mkdtemp(tmpl);
    socket = dir + "/run/ralphd.sock";
    state_dir = dir + "/state";
    config_path = dir + "/config/ralph/ralphd.conf";
    home = dir + "/home";
    fs::create_directories(home);
    env = {
        {"RALPH_SOCKET", socket},
        {"RALPH_STATE_DIR", state_dir},
        {"RALPH_CONFIG", config_path},
        {"RALPHD", RALPHD_PATH},
        {"HOME", home},
        {"XDG_CONFIG_HOME", dir + "/config"},
        {"XDG_DATA_HOME", dir + "/data"},
        {"XDG_STATE_HOME", dir + "/xdgstate"},
        {"XDG_CACHE_HOME", dir + "/cache"},
        {"XDG_RUNTIME_DIR", ""},
        {"RALPH_NO_AUTOSTART", ""},
        // The caller's opencode would override each test's own config: tests that need the real
        // one say so (E2EEnv).
        {"RALPH_OPENCODE", ""},
        {"JOURNAL_STREAM", ""},
        {"NOTIFY_SOCKET", ""},
        {"OPENCODE_DISABLE_AUTOUPDATE", "1"},
        {"OPENCODE_DISABLE_MODELS_FETCH", "1"},
    };
}

TestEnv::~TestEnv()
{
    if (daemon_pid_ > 0 && ProcessAlive(daemon_pid_)) StopDaemon();
    // An autostarted daemon is not our child: stop it through the socket.
    if (SocketAnswers(socket)) {
        try {
            Call("daemon.shutdown");
        } catch (...) {
        }
        if (!WaitFor([&] { return !SocketAnswers(socket); }, std::chrono::seconds(30)))
            ADD_FAILURE() << "the autostarted ralphd at " << socket << " still answers 30 s after daemon.shutdown";
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
}

int TestEnv::ReservePorts(int count)
{
    if (ports_) {
        ADD_FAILURE() << "ReservePorts: this environment already has its ports (from " << ports_->first << ")";
        return ports_->first;
    }
    ports_ = std::make_unique<PortBlock>(count);
    return ports_->first;
}

void TestEnv::WriteConfig(const std::string& text) { WriteFile(config_path, text); }

pid_t TestEnv::StartDaemon(const std::vector<std::string>& extra_args)
{
    std::vector<std::string> argv = {RALPHD_PATH, "--debug"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    ++daemon_starts_;
    std::string err_path = dir + "/ralphd." + std::to_string(daemon_starts_) + ".stderr";
    daemon_pid_ = SpawnProgram(argv, env, dir + "/ralphd.stdout", err_path);
    bool ready = WaitFor(
        [&] {
            if (!ProcessAlive(daemon_pid_)) return true;
            try {
                // Started means serving: what a previous daemon left is reconciled (no WARMING_UP).
                auto reply = Call("daemon.info");
                const boost::json::value* result = reply.if_contains("result");
                const boost::json::value* warming = result && result->is_object() ? result->as_object().if_contains("warming_up")
                                                                           : nullptr;
                return result && !(warming && warming->is_bool() && warming->as_bool());
            } catch (const ConnectionError&) {
                return false;
            }
        },
        std::chrono::seconds(15));
    if (!ready || !ProcessAlive(daemon_pid_)) {
        ADD_FAILURE() << "ralphd did not start; its stderr:\n" << DaemonStderr();
    }
    return daemon_pid_;
}

std::string TestEnv::DaemonStderr() const
{
    std::string all;
    for (int i = 1; i <= daemon_starts_; ++i) all += ReadFile(dir + "/ralphd." + std::to_string(i) + ".stderr");
    return all;
}

int TestEnv::StopDaemon()
{
    if (daemon_pid_ <= 0) return -1;
    kill(daemon_pid_, SIGTERM);
    int code = WaitExit(daemon_pid_, std::chrono::seconds(60));
    if (code == -1) {
        ADD_FAILURE() << "ralphd did not exit within 60s of SIGTERM";
        kill(daemon_pid_, SIGKILL);
        code = WaitExit(daemon_pid_, std::chrono::seconds(5));
    }
    daemon_pid_ = -1;
    return code;
}

void TestEnv::KillDaemon()
{
    if (daemon_pid_ <= 0) return;
    kill(daemon_pid_, SIGKILL);
    WaitExit(daemon_pid_, std::chrono::seconds(10));
    daemon_pid_ = -1;
}

CommandResult TestEnv::Ralph(const std::vector<std::string>& args, const std::string& cwd,
                             const std::map<std::string, std::string>& extra_env, std::chrono::seconds timeout)
{
    std::vector<std::string> argv = {RALPH_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    auto e = env;
    for (const auto& [k, v] : extra_env) e[k] = v;
    return RunProgram(argv, e, cwd, timeout);
}

std::unique_ptr<RpcClient> TestEnv::Connect() const { return std::make_unique<RpcClient>(socket); }

boost::json::object TestEnv::Call(const std::string& method, boost::json::value params) const
{
    RpcClient c(socket);
    return c.Call(method, std::move(params));
}

std::string OpencodeBinary()
{
    if (const char* v = std::getenv("RALPH_OPENCODE"); v && *v) return v;
    return std::string(RALPH_SOURCE_DIR) + "/.deps/opencode/node_modules/.bin/opencode";
}

FakeModel::FakeModel(const std::string& dir, const std::vector<std::string>& extra_args)
{
    log_path = dir + "/fake-model.log";
    std::vector<std::string> argv = {RALPH_FAKE_MODEL_PATH, "--port", "0", "--log", log_path};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    pid = SpawnProgram(argv, {}, dir + "/fake-model.out", dir + "/fake-model.err");
    bool said = WaitFor(
        [&] {
            std::string out = ReadFile(dir + "/fake-model.out");
            auto pos = out.find("listening on ");
            if (pos == std::string::npos) return !ProcessAlive(pid);
            url = out.substr(pos + 13);
            url = url.substr(0, url.find('\n'));
            return true;
        },
        std::chrono::seconds(10));
    if (!said || url.empty())
        ADD_FAILURE() << "ralph-fake-model did not say where it listens within 10 s: " << ReadFile(dir + "/fake-model.err");
}

FakeModel::~FakeModel()
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        WaitExit(pid, std::chrono::seconds(5));
    }
}

E2EEnv::E2EEnv(bool permissive_opencode_config, const std::string& extra_daemon_config)
{
    std::string opencode = OpencodeBinary();
    if (access(opencode.c_str(), X_OK) != 0)
        ADD_FAILURE() << "opencode is not installed at " << opencode << ": run scripts/install-opencode";
    env["RALPH_OPENCODE"] = opencode;
    env["OPENCODE_DISABLE_LSP_DOWNLOAD"] = "1";
    // Offline even when a registry is reachable: nothing is fetched at run time.
    env["npm_config_registry"] = "http://127.0.0.1:9/";
    model = std::make_unique<FakeModel>(dir);
    auto r = RunProgram({"/bin/bash", std::string(RALPH_SOURCE_DIR) + "/scripts/fake-model-config", model->url,
                         dir + "/config"},
                        env);
    if (r.exit_code != 0) ADD_FAILURE() << "fake-model-config failed: " << r.err;
    if (!permissive_opencode_config) {
        std::string path = dir + "/config/opencode/opencode.json";
        boost::json::value config = boost::json::parse(ReadFile(path));
        config.as_object().erase("permission");
        WriteFile(path, boost::json::serialize(config));
    }
    // A port range of its own, so that tests running side by side do not meet.
    port_base = ReservePorts(41);
    // Most tests' loops change nothing in their git projects; no_progress (SPEC §8) would end them
    // early. The tests of no_progress set max_idle_iterations in their task's ralph.ini.
    WriteConfig("[run]\nmax_idle_iterations = 0\n[server]\nport = " + std::to_string(port_base) + "\nport_range = " + std::to_string(port_base) + "-" +
                std::to_string(port_base + 40) + "\n" + extra_daemon_config);
}

std::string E2EEnv::MakeProject(const std::string& name)
{
    std::string project = dir + "/" + name;
    fs::create_directories(project);
    WriteFile(project + "/README.md", "# " + name + "\n");
    auto git = [&](const std::vector<std::string>& args) {
        std::vector<std::string> argv = {"/usr/bin/git", "-C", project, "-c", "user.name=t", "-c", "user.email=t@t"};
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = RunProgram(argv, env);
        if (r.exit_code != 0) ADD_FAILURE() << "git failed: " << r.err;
    };
    git({"init", "-q"});
    git({"add", "-A"});
    git({"commit", "-qm", "init"});
    return project;
}

std::string E2EEnv::AddTask(const std::string& project, const std::string& task, const std::string& prompt_md,
                            const std::string& prd_json)
{
    std::string path = project + "/tasks/" + task;
    if (!prompt_md.empty()) WriteFile(path + "/prompt.md", prompt_md);
    if (!prd_json.empty()) WriteFile(path + "/prd.json", prd_json);
    return path;
}

boost::json::object E2EEnv::WaitRunEnd(int64_t id, std::chrono::seconds timeout)
{
    boost::json::object run;
    bool ended = WaitFor(
        [&] {
            auto reply = Call("run.get", boost::json::object{{"run", id}});
            if (!reply.contains("result")) return false;
            run = reply["result"].as_object();
            // Ended: neither running nor waiting to (queued) nor held (paused).
            return run["status"] != "running" && run["status"] != "queued" && run["status"] != "paused";
        },
        timeout);
    if (!ended) ADD_FAILURE() << "run " << id << " still active after " << timeout.count() << "s";
    return run;
}

boost::json::value E2EEnv::RalphJson(const std::vector<std::string>& args, const std::string& cwd)
{
    std::vector<std::string> all = {"--json"};
    all.insert(all.end(), args.begin(), args.end());
    auto r = Ralph(all, cwd);
    EXPECT_EQ(r.exit_code, 0) << "ralph " << args[0] << ": " << r.err;
    boost::system::error_code ec;
    auto v = boost::json::parse(r.out, ec);
    EXPECT_FALSE(ec) << r.out;
    return v;
}

}  // namespace ralph::test
