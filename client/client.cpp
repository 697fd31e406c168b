#include "client/client.h"

#include "common/duration.h"
#include "common/errors.h"
#include "common/paths.h"
#include "common/rpc_client.h"
#include "common/text.h"

#include <chrono>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <iostream>
#include <optional>
#include <vector>
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
    } catch (const UntrustedSocket&) {
        throw;
    } catch (const ConnectionError&) {
        return false;
    } catch (const UnreadableReply&) {
        return true;  // it answers, if badly: Call reports how
    }
}

void Client::Disconnect() { rpc_.reset(); }

/// The pid of the ralphd answering on `socket`, or 0 when none answers or it does not say.
/// How long a call waits for a daemon that answers WARMING_UP.
constexpr std::chrono::seconds kWarmUpWait{60};

/// The error code of a reply, 0 when it is a result.
static int ErrorCode(const json::object& reply)
{
    auto* err = reply.if_contains("error");
    if (!err || !err->is_object()) return 0;
    auto* code = err->as_object().if_contains("code");
    return code && code->is_int64() ? static_cast<int>(code->as_int64()) : 0;
}

static int64_t ServingPid(const std::string& socket)
{
    try {
        RpcClient probe(socket);
        json::object reply = probe.Call("daemon.info");
        const json::value* pid = reply.contains("result") ? reply.at("result").as_object().if_contains("pid") : nullptr;
        return pid && pid->is_int64() ? pid->as_int64() : 0;
    } catch (const std::exception&) {
        return 0;
    }
}

/// The bytes of a file from `offset` on ("" when it cannot be read).
static std::string ReadFileFrom(const std::string& path, off_t offset)
{
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = pread(fd, buf, sizeof buf, offset)) > 0) {
        out.append(buf, static_cast<std::size_t>(n));
        offset += n;
    }
    close(fd);
    return out;
}

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

/// The last lines a starting ralphd wrote (they say why it stopped), indented and printable.
static std::string DaemonOutputTail(const std::string& text)
{
    std::vector<std::string> lines;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        if (!line.empty()) lines.push_back(Printable(line.substr(0, 400)));
        pos = nl == std::string::npos ? text.size() : nl + 1;
    }
    std::string out;
    for (std::size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i) out += "\n  " + lines[i];
    return out;
}

void Client::StartDaemon()
{
    std::string state_dir = DefaultStateDir();
    MakeDirs(state_dir, 0700);
    std::string log_path = state_dir + "/ralphd.log";
    std::string binary = DaemonBinary();
    // Its output goes to the log; when the log cannot be written (a read-only state directory),
    // to a pipe, so that its reason for stopping can still be shown.
    int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    std::string log_error = log_fd < 0 ? std::strerror(errno) : "";
    off_t log_start = log_fd >= 0 ? lseek(log_fd, 0, SEEK_END) : 0;
    int pipe_fds[2] = {-1, -1};
    if (log_fd < 0 && pipe2(pipe_fds, O_CLOEXEC) != 0) pipe_fds[0] = pipe_fds[1] = -1;
    pid_t pid = fork();
    if (pid < 0) throw ConnectionError(std::string("cannot start ralphd: fork: ") + std::strerror(errno));
    if (pid == 0) {
        setsid();
        int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int out_fd = log_fd >= 0 ? log_fd : pipe_fds[1];
        if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
        if (out_fd >= 0) {
            dup2(out_fd, STDOUT_FILENO);
            dup2(out_fd, STDERR_FILENO);
        }
        execlp(binary.c_str(), binary.c_str(), "--socket", socket_path.c_str(), static_cast<char*>(nullptr));
        dprintf(STDERR_FILENO, "ralph: cannot execute %s: %s\n", binary.c_str(), std::strerror(errno));
        _exit(127);
    }
    if (log_fd >= 0) close(log_fd);
    if (pipe_fds[1] >= 0) close(pipe_fds[1]);
    if (pipe_fds[0] >= 0) fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    std::string piped;
    auto drain = [&] {
        char buf[4096];
        ssize_t n;
        while (pipe_fds[0] >= 0 && (n = read(pipe_fds[0], buf, sizeof buf)) > 0) piped.append(buf, static_cast<std::size_t>(n));
    };
    auto close_pipe = [&] {
        if (pipe_fds[0] >= 0) close(pipe_fds[0]);  // a daemon that runs on finds its stderr closed: SIGPIPE is ignored
        pipe_fds[0] = -1;
    };
    // Several clients may start a daemon at once; the instance lock lets one win and the others
    // exit, so keep waiting for the socket even when our own child gave up.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    std::optional<std::chrono::steady_clock::time_point> child_exit;
    int status = 0;
    bool answered = false;
    while (std::chrono::steady_clock::now() < deadline) {
        drain();
        if (!child_exit && waitpid(pid, &status, WNOHANG) == pid) {
            child_exit = std::chrono::steady_clock::now();
        }
        answered = DaemonAnswers();
        // When another client's ralphd won the instance lock, ours exits at once; wait for that,
        // so that no second ralphd is still starting when we return (it would take the socket
        // over as soon as the first one stops, and nobody would stop it).
        if (answered && (child_exit || ServingPid(socket_path) == pid)) {
            close_pipe();
            return;
        }
        if (child_exit && std::chrono::steady_clock::now() - *child_exit > std::chrono::seconds(3)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    drain();
    close_pipe();
    if (answered) return;  // a ralphd serves; ours is still starting after 15 s and will find it there
    std::string output = log_error.empty() ? ReadFileFrom(log_path, log_start) : piped;
    std::string message = "started " + binary + " but it did not answer on " + socket_path;
    if (child_exit) {
        message += WIFEXITED(status) ? "; it exited with status " + std::to_string(WEXITSTATUS(status))
                                     : "; it was killed by signal " + std::to_string(WTERMSIG(status));
    }
    std::string tail = DaemonOutputTail(output);
    if (!tail.empty()) message += ". It said:" + tail + "\n";
    if (!log_error.empty()) message += (tail.empty() ? "; " : "") + std::string("its log ") + log_path + " cannot be written: " + log_error;
    else message += (tail.empty() ? "; see its log " : "Its log: ") + log_path;
    throw ConnectionError(message);
}

void Client::Connect()
{
    if (rpc_) return;
    try {
        rpc_ = std::make_unique<RpcClient>(socket_path);
        return;
    } catch (const UntrustedSocket&) {
        throw;  // starting a daemon there would not help
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
    json::object reply;
    // A daemon that is still reconciling what its predecessor left answers WARMING_UP: wait for
    // it, within a deadline (stopping a leftover server takes at most its stop timeout).
    const auto deadline = std::chrono::steady_clock::now() + kWarmUpWait;
    for (bool said = false;;) {
        try {
            reply = rpc_->Call(method, params);
        } catch (const UnreadableReply& e) {
            // ralphd is reachable, so not exit 3 with "start it": an error of the daemon (exit 1).
            throw DaemonError(kInternalError, std::string(e.what()) + "; this is a bug in ralphd: please report it");
        }
        if (ErrorCode(reply) != kWarmingUp || !wait_warming_up || std::chrono::steady_clock::now() >= deadline) break;
        if (!said) std::cerr << "ralph: ralphd is starting (stopping what a previous ralphd left); waiting\n";
        said = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (auto* err = reply.if_contains("error")) {
        const json::object& e = err->as_object();
        int code = ErrorCode(reply);
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
    return FormatLocalTime(unix_ms, "%Y-%m-%d %H:%M");
}

}  // namespace ralph
