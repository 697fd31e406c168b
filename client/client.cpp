#include "client/client.h"

#include "common/paths.h"
#include "common/rpc_client.h"

#include <chrono>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <iostream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace ralph {

namespace json = boost::json;

Client::Client()
{
    char buf[4096];
    cwd = getcwd(buf, sizeof buf) ? buf : GetEnv("PWD");
}

Client::~Client() = default;

bool Client::DaemonAnswers()
{
    try {
        RpcClient probe(socket_path);
        auto reply = probe.Call("daemon.ping");
        return reply.contains("result");
    } catch (const ConnectionError&) {
        return false;
    }
}

void Client::Disconnect() { rpc_.reset(); }

/// ralphd beside this ralph binary when there is one, else ralphd on PATH.
static std::string DaemonBinary()
{
    if (auto v = GetEnv("RALPHD"); !v.empty()) return v;
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) {
        std::string self(buf, static_cast<std::size_t>(n));
        std::string sibling = DirName(self) + "/ralphd";
        if (access(sibling.c_str(), X_OK) == 0) return sibling;
    }
    return "ralphd";
}

void Client::StartDaemon()
{
    std::string state_dir = DefaultStateDir();
    MakeDirs(state_dir, 0700);
    std::string log_path = state_dir + "/ralphd.log";
    std::string binary = DaemonBinary();
    pid_t pid = fork();
    if (pid < 0) throw ConnectionError(std::string("cannot start ralphd: fork: ") + std::strerror(errno));
    if (pid == 0) {
        setsid();
        int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
        if (log_fd >= 0) {
            dup2(log_fd, STDOUT_FILENO);
            dup2(log_fd, STDERR_FILENO);
        }
        execlp(binary.c_str(), binary.c_str(), "--socket", socket_path.c_str(), static_cast<char*>(nullptr));
        dprintf(STDERR_FILENO, "ralph: cannot execute %s: %s\n", binary.c_str(), std::strerror(errno));
        _exit(127);
    }
    // Several clients may start a daemon at once; the instance lock lets one win and the others
    // exit, so keep waiting for the socket even when our own child gave up.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    std::optional<std::chrono::steady_clock::time_point> child_exit;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        if (DaemonAnswers()) return;
        if (!child_exit && waitpid(pid, &status, WNOHANG) == pid) {
            child_exit = std::chrono::steady_clock::now();
        }
        if (child_exit && std::chrono::steady_clock::now() - *child_exit > std::chrono::seconds(3)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw ConnectionError("started " + binary + " but it did not answer on " + socket_path +
                          "; see its log " + log_path);
}

void Client::Connect()
{
    if (rpc_) return;
    try {
        rpc_ = std::make_unique<RpcClient>(socket_path);
        return;
    } catch (const ConnectionError& e) {
        if (!autostart) throw;
    }
    StartDaemon();
    rpc_ = std::make_unique<RpcClient>(socket_path);
}

RpcClient& Client::Connection()
{
    Connect();
    return *rpc_;
}

json::value Client::Call(const std::string& method, json::value params)
{
    Connect();
    json::object reply = rpc_->Call(method, std::move(params));
    if (auto* err = reply.if_contains("error")) {
        const json::object& e = err->as_object();
        int code = e.contains("code") && e.at("code").is_int64() ? static_cast<int>(e.at("code").as_int64()) : 0;
        std::string message = e.contains("message") && e.at("message").is_string()
                                  ? std::string(e.at("message").as_string())
                                  : "unknown error";
        throw DaemonError(code, message);
    }
    // Moved out, not copied: `status --all` results hold thousands of runs.
    if (auto* result = reply.if_contains("result")) return std::move(*result);
    return json::value();
}

void PrintJson(const json::value& v) { std::cout << json::serialize(v) << "\n"; }

std::string HumanDuration(long long ms)
{
    if (ms < 0) ms = 0;
    long long s = ms / 1000;
    char buf[32];
    if (s < 60) std::snprintf(buf, sizeof buf, "%llds", s);
    else if (s < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400) std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
    else std::snprintf(buf, sizeof buf, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
    return buf;
}

std::string HumanTime(long long unix_ms)
{
    if (unix_ms <= 0) return "-";
    time_t t = static_cast<time_t>(unix_ms / 1000);
    tm local{};
    localtime_r(&t, &local);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &local);
    return buf;
}

}  // namespace ralph
