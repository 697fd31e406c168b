#include "daemon/server_supervisor.h"

#include "common/errors.h"
#include "common/log.h"
#include "common/paths.h"
#include "daemon/process.h"
#include "daemon/store.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace ralph {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

/// Thrown inside the supervisor's coroutines when it was destroyed while they were suspended:
/// unwinds them without touching it.
struct SupervisorGone {};

constexpr std::size_t kLogRotateBytes = 5 << 20;
constexpr std::size_t kRecentLines = 20;
constexpr const char* kListeningPrefix = "opencode server listening on http://";
constexpr const char* kTagVariable = "RALPHD_SERVER_TAG";
/// The state directory of the ralphd that started a server, in the environment of the server and
/// of every tool it runs: how a successor finds what a daemon killed before it recorded its server.
constexpr const char* kOwnerVariable = "RALPHD_OWNER";
const auto kForever = SteadyClock::time_point::max();

void LogDetached(std::exception_ptr e)
{
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const SupervisorGone&) {
    } catch (const std::exception& x) {
        Log(LogLevel::Error) << "server supervisor: unexpected error: " << x.what();
    }
}

std::string StripAnsi(std::string_view s)
{
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\x1b' && i + 1 < s.size() && s[i + 1] == '[') {
            i += 2;
            while (i < s.size() && !(s[i] >= '@' && s[i] <= '~')) ++i;
            continue;
        }
        out += s[i];
    }
    return out;
}

std::string LocalTimestamp()
{
    std::time_t t = std::time(nullptr);
    std::tm tm {};
    localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

double SecondsBetween(SteadyClock::time_point a, SteadyClock::time_point b)
{
    return std::chrono::duration<double>(b - a).count();
}

/// True when nothing listens on 127.0.0.1:port now (we can bind and listen there ourselves).
bool PortFree(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as opencode's own listen does
    sockaddr_in addr {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && listen(fd, 1) == 0;
    close(fd);
    return free;
}

/// The port of "opencode server listening on http://127.0.0.1:PORT", or 0.
int ParseListeningLine(std::string_view line)
{
    std::string_view prefix = kListeningPrefix;
    if (line.substr(0, prefix.size()) != prefix) return 0;
    auto colon = line.rfind(':');
    if (colon == std::string_view::npos || colon < prefix.size()) return 0;
    int port = 0;
    for (char c : line.substr(colon + 1)) {
        if (c < '0' || c > '9') return 0;
        port = port * 10 + (c - '0');
        if (port > 65535) return 0;
    }
    return port;
}

bool HealthyReply(const HttpResult& r, std::string* version)
{
    if (!r.ok()) return false;
    json::value v = r.Json();
    if (!v.is_object()) return false;
    auto* healthy = v.as_object().if_contains("healthy");
    if (!healthy || !healthy->is_bool() || !healthy->as_bool()) return false;
    if (auto* ver = v.as_object().if_contains("version"); ver && ver->is_string() && version)
        *version = std::string(ver->as_string());
    return true;
}

}  // namespace

const char* ServerStateName(ServerState s)
{
    switch (s) {
    case ServerState::Stopped: return "stopped";
    case ServerState::Starting: return "starting";
    case ServerState::Running: return "running";
    case ServerState::Unhealthy: return "unhealthy";
    case ServerState::Backoff: return "backoff";
    case ServerState::Fatal: return "fatal";
    case ServerState::External: return "external";
    }
    return "?";
}

// ---------------------------------------------------------------------------------------------
// RestartPolicy

RestartPolicy::RestartPolicy(Limits limits) : limits_(limits), next_delay_(std::min(limits.initial, limits.max)) {}

void RestartPolicy::Prune(TimePoint now) const
{
    while (!starts_.empty() && now - starts_.front() >= limits_.interval) starts_.pop_front();
}

void RestartPolicy::OnStart(TimePoint now)
{
    Prune(now);
    starts_.push_back(now);
}

std::optional<Millis> RestartPolicy::OnFailure(TimePoint now, Millis up_for)
{
    if (up_for >= limits_.stable) next_delay_ = std::min(limits_.initial, limits_.max);
    Prune(now);
    if (static_cast<int>(starts_.size()) >= limits_.burst) return std::nullopt;
    Millis delay = next_delay_;
    next_delay_ = std::min(next_delay_ * 2, limits_.max);
    return delay;
}

void RestartPolicy::Reset()
{
    starts_.clear();
    next_delay_ = std::min(limits_.initial, limits_.max);
}

int RestartPolicy::StartsInWindow(TimePoint now) const
{
    Prune(now);
    return static_cast<int>(starts_.size());
}

// ---------------------------------------------------------------------------------------------
// The server's output: <state_dir>/opencode-server.log, rotated to .1 at 5 MiB.

struct ServerSupervisor::OutputLog {
    explicit OutputLog(std::string p) : path(std::move(p)) {}
    ~OutputLog()
    {
        if (fd >= 0) close(fd);
    }

    void Write(std::string_view line)
    {
        if (fd < 0) Open();
        if (fd < 0) return;
        if (size + line.size() + 1 > kLogRotateBytes) {
            close(fd);
            fd = -1;
            std::rename(path.c_str(), (path + ".1").c_str());
            Open();
            if (fd < 0) return;
        }
        std::string text(line);
        text += '\n';
        if (::write(fd, text.data(), text.size()) > 0) size += text.size();
    }

    void Open()
    {
        fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            if (!warned) Log(LogLevel::Warning) << "cannot write " << path << ": " << std::strerror(errno);
            warned = true;
            return;
        }
        struct stat st {};
        size = fstat(fd, &st) == 0 ? static_cast<std::size_t>(st.st_size) : 0;
    }

    std::string path;
    int fd{-1};
    std::size_t size{0};
    bool warned{false};
};

/// One launched `opencode serve` process.
struct ServerSupervisor::Instance {
    int pid{0};
    uint64_t start_time{0};
    int port{0};  ///< the port asked for; the listening line's port once it came
    std::string password;
    std::string tag;  ///< RALPHD_SERVER_TAG in its environment, inherited by its tool processes
    bool listening{false};
    bool exited{false};
    ExitStatus exit;
    int open_streams{0};
    std::deque<std::string> recent;  ///< its last output lines, without colour codes
    std::vector<std::shared_ptr<asio::posix::stream_descriptor>> streams;

    std::string RecentOutput(std::size_t lines = 4) const
    {
        std::string out;
        std::size_t from = recent.size() > lines ? recent.size() - lines : 0;
        for (std::size_t i = from; i < recent.size(); ++i) {
            if (recent[i].empty()) continue;
            if (!out.empty()) out += " | ";
            out += recent[i];
        }
        return out;
    }
    void CloseStreams()
    {
        for (auto& s : streams) {
            boost::system::error_code ec;
            s->close(ec);
        }
    }
};

// ---------------------------------------------------------------------------------------------

ServerSupervisor::ServerSupervisor(asio::io_context& io, const ServerSettings& settings, RunStore& store,
                                   const std::string& state_dir)
    : ServerSupervisor(io, settings, store, state_dir, SupervisorHooks{})
{
}

ServerSupervisor::ServerSupervisor(asio::io_context& io, const ServerSettings& settings, RunStore& store,
                                   const std::string& state_dir, SupervisorHooks hooks)
    : io_(io),
      settings_(settings),
      store_(store),
      state_dir_(state_dir),
      log_path_(state_dir + "/opencode-server.log"),
      hooks_(std::move(hooks)),
      proc_(std::make_unique<ProcFs>(hooks_.proc_root)),
      output_log_(std::make_unique<OutputLog>(log_path_)),
      policy_(RestartPolicy::Limits{hooks_.initial_backoff, settings.restart_backoff_max, settings.start_limit_burst,
                                    settings.start_limit_interval, hooks_.stable_after})
{
    if (hooks_.launcher) {
        launcher_ = hooks_.launcher;
    } else {
        launcher_ = std::make_shared<PosixLauncher>(io_);
        // Tool processes opencode starts in their own sessions come back to us when it dies.
        BecomeChildSubreaper();
    }
    if (settings_.mode == "external") {
        external_ = true;
        state_ = ServerState::External;
        std::string url = settings_.url;
        while (!url.empty() && url.back() == '/') url.pop_back();
        constexpr std::string_view scheme = "http://";
        auto colon = url.rfind(':');
        int port = 0;
        if (url.compare(0, scheme.size(), scheme) == 0 && colon != std::string::npos && colon > scheme.size()) {
            try {
                std::size_t used = 0;
                port = std::stoi(url.substr(colon + 1), &used);
                if (used != url.size() - colon - 1) port = 0;
            } catch (const std::exception&) {
                port = 0;
            }
        }
        std::string host = port > 0 ? url.substr(scheme.size(), colon - scheme.size()) : "";
        if (host == "localhost") host = "127.0.0.1";
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        boost::system::error_code ec;
        asio::ip::make_address(host, ec);
        if (port <= 0 || port > 65535 || ec) {
            external_url_error_ = "server.url '" + settings_.url +
                                  "' is not http://IP:PORT (e.g. http://127.0.0.1:4096); fix it in ralphd.conf";
            last_error_ = external_url_error_;
        } else {
            external_endpoint_.host = host;
            external_endpoint_.port = port;
            external_endpoint_.password = settings_.password;
            watching_external_ = true;
            asio::co_spawn(io_, WatchExternal(), LogDetached);
        }
    }
}

ServerSupervisor::~ServerSupervisor()
{
    *alive_ = false;
    if (current_) current_->CloseStreams();
    for (auto* t : waiters_) t->cancel();
}

void ServerSupervisor::Subscribe(std::function<void(ServerState)> listener) { listeners_.push_back(std::move(listener)); }

void ServerSupervisor::SetState(ServerState s)
{
    if (s == state_) return;
    Log(s == ServerState::Fatal ? LogLevel::Error : LogLevel::Info)
        << "opencode server: " << ServerStateName(state_) << " -> " << ServerStateName(s);
    state_ = s;
    Wake();
    auto listeners = listeners_;  // a listener may subscribe another
    for (auto& l : listeners) {
        try {
            l(s);
        } catch (const std::exception& e) {
            Log(LogLevel::Error) << "server state listener failed: " << e.what();
        }
    }
}

void ServerSupervisor::Wake()
{
    for (auto* t : waiters_) t->cancel();
}

asio::awaitable<bool> ServerSupervisor::WaitUntil(std::function<bool()> pred, SteadyClock::time_point deadline)
{
    auto alive = alive_;
    for (;;) {
        if (pred()) co_return true;
        if (SteadyClock::now() >= deadline) co_return false;
        asio::steady_timer timer(io_, deadline);
        waiters_.insert(&timer);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (!*alive) throw SupervisorGone{};
        waiters_.erase(&timer);
    }
}

asio::awaitable<void> ServerSupervisor::Sleep(Millis d)
{
    auto alive = alive_;
    asio::steady_timer timer(io_, d);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!*alive) throw SupervisorGone{};
}

asio::awaitable<HttpResult> ServerSupervisor::Http(ServerEndpoint endpoint, http::verb method, std::string target,
                                                   Millis timeout)
{
    auto alive = alive_;
    HttpResult r = co_await HttpCall(endpoint, method, target, "", timeout);
    if (!*alive) throw SupervisorGone{};
    co_return r;
}

void ServerSupervisor::Event(const std::string& event, int pid, int port, const std::string& detail)
{
    Log(event == "fatal" || event == "start_failed" ? LogLevel::Warning : LogLevel::Info)
        << "opencode server " << event << (pid ? " pid " + std::to_string(pid) : "")
        << (port ? " port " + std::to_string(port) : "") << (detail.empty() ? "" : ": " + detail);
    output_log_->Write("[ralphd " + LocalTimestamp() + "] " + event + (pid ? " pid " + std::to_string(pid) : "") +
                       (detail.empty() ? "" : ": " + detail));
    try {
        store_.RecordServerEvent(event, pid, port, detail, NowMillis());
    } catch (const std::exception& e) {
        Log(LogLevel::Error) << "cannot record the server event '" << event << "': " << e.what();
    }
}

void ServerSupervisor::RecordManaged(const std::optional<ManagedServerRecord>& record)
{
    try {
        store_.SetManagedServer(record);
    } catch (const std::exception& e) {
        Log(LogLevel::Error) << "cannot record the managed server: " << e.what();
    }
}

ServerEndpoint ServerSupervisor::EndpointOf(const Instance& inst) const
{
    ServerEndpoint ep;
    ep.host = "127.0.0.1";
    ep.port = inst.port;
    ep.password = inst.password;
    return ep;
}

Millis ServerSupervisor::HealthTimeout() const
{
    return std::clamp<Millis>(settings_.health_interval / 2, milliseconds(100), seconds(5));
}

std::string ServerSupervisor::OpencodeName() const { return settings_.opencode.empty() ? "opencode" : settings_.opencode; }

std::string ServerSupervisor::ResolveOpencode(std::string& error) const
{
    std::string name = OpencodeName();
    std::string found = FindExecutable(name, hooks_.path_env.empty() ? GetEnv("PATH") : hooks_.path_env);
    if (found.empty()) {
        // ralphd's environment (PATH, RALPH_OPENCODE) is fixed when it starts: setting them in the
        // user's shell changes nothing here, so name the fixes that work.
        const std::string from_env = GetEnv("RALPH_OPENCODE");
        if (!from_env.empty() && from_env == settings_.opencode) {
            error = "opencode not found at " + name +
                    ": RALPH_OPENCODE in ralphd's environment names it, and that environment is fixed when ralphd "
                    "starts: start ralphd again with RALPH_OPENCODE naming the binary (`ralph daemon stop`, then any "
                    "ralph command), or without it and with server.opencode in ralphd.conf; or install "
                    "opencode-ai@1.18.33";
        } else {
            error = "opencode not found" +
                    (name.find('/') != std::string::npos ? " at " + name : std::string(" on PATH")) +
                    ": set server.opencode in ralphd.conf to the binary's path and run `ralph daemon reload`, or "
                    "install opencode-ai@1.18.33 (ralphd's environment is fixed when it starts: RALPH_OPENCODE or "
                    "PATH set in your shell later need a new ralphd: `ralph daemon stop`, then any ralph command)";
        }
    }
    return found;
}

std::string ServerSupervisor::FatalMessage() const
{
    if (!fatal_reason_.empty()) return fatal_reason_;
    return "the opencode server failed " + std::to_string(settings_.start_limit_burst) + " times in " +
           FormatDuration(settings_.start_limit_interval) + (last_error_.empty() ? "" : " (last: " + last_error_ + ")") +
           "; see " + log_path_ + "; run `ralph server start` to try again";
}

// ---------------------------------------------------------------------------------------------
// Status

std::optional<ServerEndpoint> ServerSupervisor::Live() const
{
    if (external_) {
        if (healthy_ && external_url_error_.empty()) return external_endpoint_;
        return std::nullopt;
    }
    if (state_ == ServerState::Running && healthy_ && current_ && !current_->exited) return EndpointOf(*current_);
    return std::nullopt;
}

json::object ServerSupervisor::Status() const
{
    json::object o;
    o["mode"] = external_ ? "external" : "managed";
    o["state"] = ServerStateName(state_);
    o["pid"] = nullptr;
    o["url"] = nullptr;
    o["port"] = nullptr;
    o["version"] = version_.empty() ? json::value(nullptr) : json::value(version_);
    o["uptime"] = nullptr;
    o["restarts"] = restarts_;
    o["last_error"] = last_error_.empty() ? json::value(nullptr) : json::value(last_error_);
    o["healthy"] = false;
    o["next_restart_in"] = nullptr;
    json::array untracked;
    for (const UntrackedServer& u : UntrackedServers())
        untracked.push_back(json::object{{"pid", u.pid}, {"port", u.port ? json::value(u.port) : json::value(nullptr)}});
    o["untracked_servers"] = std::move(untracked);
    if (external_) {
        o["url"] = settings_.url;
        if (external_url_error_.empty()) o["port"] = external_endpoint_.port;
        o["healthy"] = healthy_;
        return o;
    }
    o["log"] = log_path_;
    if (current_ && !current_->exited) {
        o["pid"] = current_->pid;
        o["port"] = current_->port;
        if (current_->listening) o["url"] = EndpointOf(*current_).url();
    }
    if (state_ == ServerState::Running) {
        o["healthy"] = healthy_;
        o["uptime"] = SecondsBetween(running_since_, SteadyClock::now());
    }
    if (state_ == ServerState::Backoff)
        o["next_restart_in"] = std::max(0.0, SecondsBetween(SteadyClock::now(), next_restart_at_));
    return o;
}

int ServerSupervisor::managed_pid() const { return current_ && !current_->exited ? current_->pid : 0; }

std::vector<UntrackedServer> ServerSupervisor::UntrackedServers() const
{
    std::vector<UntrackedServer> out;
    int managed = managed_pid();
    for (const OpencodeServerProcess& p : proc_->FindOpencodeServers(getuid())) {
        if (p.pid == managed) continue;
        out.push_back({p.pid, p.port});
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Starting

int ServerSupervisor::ChoosePort(const std::set<int>& excluded) const
{
    std::vector<int> candidates{settings_.port};
    for (int p = settings_.port_min; p <= settings_.port_max; ++p)
        if (p != settings_.port) candidates.push_back(p);
    for (int p : candidates)
        if (p > 0 && !excluded.count(p) && PortFree(p)) return p;
    return 0;
}

std::shared_ptr<ServerSupervisor::Instance> ServerSupervisor::Launch(const std::string& binary, int port,
                                                                     std::string& error)
{
    auto inst = std::make_shared<Instance>();
    inst->port = port;
    inst->password = RandomHex(16);
    inst->tag = RandomHex(8);

    LaunchSpec spec;
    spec.program = binary;
    spec.args = {"serve", "--hostname", "127.0.0.1", "--port", std::to_string(port)};
    spec.env = CurrentEnvironment();  // HOME, XDG_*, provider keys: the user's own opencode setup
    UnsetEnv(spec.env, "OPENCODE_SERVER_USERNAME");
    SetEnv(spec.env, "OPENCODE_SERVER_PASSWORD", inst->password);
    SetEnv(spec.env, "OPENCODE_DISABLE_AUTOUPDATE", "1");
    SetEnv(spec.env, kTagVariable, inst->tag);
    SetEnv(spec.env, kOwnerVariable, state_dir_);
    spec.cwd = state_dir_;

    auto launched = launcher_->Launch(spec);
    if (auto* err = std::get_if<std::string>(&launched)) {
        error = *err;
        return nullptr;
    }
    const LaunchedProcess& child = std::get<LaunchedProcess>(launched);
    inst->pid = child.pid;
    if (auto st = proc_->Stat(child.pid)) inst->start_time = st->start_time;
    output_log_->Write("[ralphd " + LocalTimestamp() + "] started " + binary + " serve --hostname 127.0.0.1 --port " +
                       std::to_string(port) + " (pid " + std::to_string(child.pid) + ")");
    inst->open_streams = 2;
    DrainOutput(inst, child.stdout_fd, true);
    DrainOutput(inst, child.stderr_fd, false);
    auto alive = alive_;
    launcher_->WatchExit(child.pid, [this, alive, inst](ExitStatus status) {
        if (!*alive) return;
        inst->exited = true;
        inst->exit = status;
        if (current_ == inst) healthy_ = false;  // noticed at once: no longer live
        Wake();
    });
    return inst;
}

void ServerSupervisor::DrainOutput(std::shared_ptr<Instance> inst, int fd, bool is_stdout)
{
    auto stream = std::make_shared<asio::posix::stream_descriptor>(io_, fd);
    inst->streams.push_back(stream);
    asio::co_spawn(io_, ReadOutput(inst, stream, is_stdout), LogDetached);
}

asio::awaitable<void> ServerSupervisor::ReadOutput(std::shared_ptr<Instance> inst,
                                                   std::shared_ptr<asio::posix::stream_descriptor> stream,
                                                   bool is_stdout)
{
    auto alive = alive_;
    std::string partial;
    char buf[8192];
    auto line = [&](std::string text) {
        if (!text.empty() && text.back() == '\r') text.pop_back();
        output_log_->Write(text);
        std::string plain = StripAnsi(text);
        if (is_stdout && !inst->listening) {
            if (int port = ParseListeningLine(plain)) {
                inst->port = port;
                inst->listening = true;
                Wake();
                return;  // not worth quoting in an error message
            }
        }
        inst->recent.push_back(std::move(plain));
        if (inst->recent.size() > kRecentLines) inst->recent.pop_front();
    };
    for (;;) {
        auto [ec, n] = co_await stream->async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
        if (!*alive) co_return;
        partial.append(buf, n);
        std::size_t start = 0;
        for (std::size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1)
            line(partial.substr(start, nl - start));
        partial.erase(0, start);
        if (partial.size() > 64 * 1024) {  // a line without end: log it in pieces
            line(partial);
            partial.clear();
        }
        if (ec) break;
    }
    if (!partial.empty()) line(partial);
    boost::system::error_code ignored;
    stream->close(ignored);
    --inst->open_streams;
    Wake();
}

void ServerSupervisor::BeginSupervising()
{
    supervising_ = true;
    stop_requested_ = false;
    start_now_ = false;
    ++attempt_;
    SetState(ServerState::Starting);
    asio::co_spawn(io_, Supervise(), LogDetached);
}

asio::awaitable<ServerSupervisor::StartOutcome> ServerSupervisor::StartOnce()
{
    policy_.OnStart(SteadyClock::now());
    std::string error;
    std::string binary = ResolveOpencode(error);
    if (binary.empty()) {
        fatal_reason_ = last_error_ = error;
        co_return StartOutcome::Fatal;
    }
    std::set<int> busy;
    for (int tries = 0; tries < 10; ++tries) {
        if (stop_requested_) co_return StartOutcome::Cancelled;
        int port = ChoosePort(busy);
        if (port == 0) {
            last_error_ = "no free port among " + std::to_string(settings_.port) + " and " +
                          std::to_string(settings_.port_min) + "-" + std::to_string(settings_.port_max) +
                          "; set server.port or server.port_range in ralphd.conf";
            co_return StartOutcome::Failed;
        }
        auto launched_at = SteadyClock::now();
        auto inst = Launch(binary, port, error);
        if (!inst) {
            last_error_ = error;
            co_return StartOutcome::Failed;
        }
        current_ = inst;
        // Recorded at once: should ralphd die during the start, its successor still finds it.
        RecordManaged(ManagedServerRecord{inst->pid, inst->start_time, port, NowMillis()});
        Event("starting", inst->pid, port, "");
        auto deadline = launched_at + hooks_.start_timeout;
        co_await WaitUntil([&] { return inst->listening || inst->exited || stop_requested_; }, deadline);
        if (stop_requested_) co_return StartOutcome::Cancelled;

        if (inst->exited) {
            // Read what it printed last before judging why it went.
            co_await WaitUntil([&] { return inst->open_streams == 0; }, SteadyClock::now() + seconds(2));
            std::string output = inst->RecentOutput();
            current_.reset();
            co_await KillLeftovers(std::string(kTagVariable) + "=" + inst->tag, {});
            if (!inst->listening && output.find("ServeError") != std::string::npos) {
                Event("port_busy", inst->pid, port, "opencode could not listen on the port; trying another");
                busy.insert(port);
                continue;
            }
            last_error_ = "opencode " + inst->exit.Describe() + (inst->listening ? " right after listening" : " before listening") +
                          (output.empty() ? "" : ": " + output);
            co_return StartOutcome::Failed;
        }
        if (!inst->listening) {
            last_error_ = "opencode did not print its listening line within " + FormatDuration(hooks_.start_timeout);
            co_await Terminate(inst, false);
            current_.reset();
            co_return StartOutcome::Failed;
        }

        // Listening: now an authenticated /global/health must say healthy.
        HttpResult health;
        std::string version;
        bool healthy = false;
        for (;;) {
            health = co_await Http(EndpointOf(*inst), http::verb::get, "/global/health", HealthTimeout());
            if (stop_requested_) co_return StartOutcome::Cancelled;
            healthy = HealthyReply(health, &version);
            if (healthy || inst->exited || SteadyClock::now() >= deadline) break;
            co_await Sleep(milliseconds(100));
        }
        if (!healthy) {
            last_error_ = inst->exited ? "opencode " + inst->exit.Describe() + " right after listening"
                                       : "/global/health did not say healthy: " + health.Describe();
            co_await Terminate(inst, false);
            current_.reset();
            co_return StartOutcome::Failed;
        }
        version_ = version;
        healthy_ = true;
        RecordManaged(ManagedServerRecord{inst->pid, inst->start_time, inst->port, NowMillis()});
        Event("started", inst->pid, inst->port,
              "version " + version_ + ", healthy after " +
                  std::to_string(std::chrono::duration_cast<milliseconds>(SteadyClock::now() - launched_at).count()) + " ms");
        co_return StartOutcome::Running;
    }
    last_error_ = "opencode could not listen on any of the ports tried; see " + log_path_;
    co_return StartOutcome::Failed;
}

asio::awaitable<void> ServerSupervisor::Supervise()
{
    bool first = true;
    for (;;) {
        if (stop_requested_ || shutting_down_) break;
        if (!first) {
            ++attempt_;
            SetState(ServerState::Starting);
        }
        first = false;
        StartOutcome outcome = co_await StartOnce();
        if (outcome == StartOutcome::Cancelled || stop_requested_) break;
        if (outcome == StartOutcome::Fatal) {
            failed_attempt_ = attempt_;
            Event("fatal", 0, 0, FatalMessage());
            SetState(ServerState::Fatal);
            break;
        }

        Millis up_for{0};
        std::shared_ptr<Instance> inst;
        RunOutcome ended = RunOutcome::Exited;
        if (outcome == StartOutcome::Running) {
            inst = current_;
            running_since_ = SteadyClock::now();
            SetState(ServerState::Running);
            ended = co_await Monitor(inst);
            if (ended == RunOutcome::Cancelled || stop_requested_) break;
            up_for = std::chrono::duration_cast<Millis>(SteadyClock::now() - running_since_);
            if (ended == RunOutcome::Unhealthy) {
                Event("unhealthy", inst->pid, inst->port, last_error_);
                SetState(ServerState::Unhealthy);
                co_await Terminate(inst, false);
                if (stop_requested_) break;
            } else {
                std::string output = inst->RecentOutput(2);
                last_error_ = "opencode " + inst->exit.Describe() + " after running " + FormatDuration(up_for) +
                              (output.empty() ? "" : " (last output: " + output + ")");
                Event("exited", inst->pid, inst->port, last_error_);
            }
            RecordManaged(std::nullopt);
        } else {
            failed_attempt_ = attempt_;
            RecordManaged(std::nullopt);
            Event("start_failed", 0, 0, last_error_);
        }

        auto delay = policy_.OnFailure(SteadyClock::now(), up_for);
        if (!delay) {
            fatal_reason_.clear();
            Event("fatal", 0, 0, FatalMessage());
            SetState(ServerState::Fatal);
        } else {
            next_restart_at_ = SteadyClock::now() + *delay;
            start_now_ = false;
            SetState(ServerState::Backoff);
        }
        if (inst && ended == RunOutcome::Exited) {
            // It died on its own: its tool processes are ours now (subreaper); end them.
            co_await KillLeftovers(std::string(kTagVariable) + "=" + inst->tag, {});
        }
        if (current_ == inst) current_.reset();
        if (!delay) break;
        co_await WaitUntil([&] { return stop_requested_ || start_now_ || shutting_down_; }, next_restart_at_);
        if (stop_requested_ || shutting_down_) break;
        ++restarts_;
    }
    supervising_ = false;
    Wake();
}

asio::awaitable<ServerSupervisor::RunOutcome> ServerSupervisor::Monitor(std::shared_ptr<Instance> inst)
{
    int failures = 0;
    auto next = SteadyClock::now() + settings_.health_interval;
    for (;;) {
        co_await WaitUntil([&] { return stop_requested_ || inst->exited; }, next);
        if (stop_requested_) co_return RunOutcome::Cancelled;
        if (inst->exited) co_return RunOutcome::Exited;
        // A fixed cadence: a slow check does not push the next one back.
        next += settings_.health_interval;
        if (next < SteadyClock::now()) next = SteadyClock::now() + settings_.health_interval;
        HttpResult r = co_await Http(EndpointOf(*inst), http::verb::get, "/global/health", HealthTimeout());
        if (stop_requested_) co_return RunOutcome::Cancelled;
        if (inst->exited) co_return RunOutcome::Exited;
        std::string version;
        if (HealthyReply(r, &version)) {
            failures = 0;
            if (!version.empty()) version_ = version;
            if (!healthy_) {
                healthy_ = true;
                Log(LogLevel::Info) << "opencode server is healthy again";
                Wake();
            }
            continue;
        }
        ++failures;
        healthy_ = false;
        last_error_ = "health check " + std::to_string(failures) + "/" + std::to_string(settings_.health_failures) +
                      " failed: " + r.Describe();
        Log(LogLevel::Warning) << "opencode server (pid " << inst->pid << "): " << last_error_;
        Wake();
        if (failures >= settings_.health_failures) co_return RunOutcome::Unhealthy;
    }
}

// ---------------------------------------------------------------------------------------------
// Stopping

asio::awaitable<void> ServerSupervisor::Terminate(std::shared_ptr<Instance> inst, bool dispose)
{
    std::vector<ProcStat> seen;
    if (!inst->exited) {
        if (dispose && inst->listening) {
            // Aborts the sessions and kills their tool processes, which a signal would orphan.
            HttpResult r = co_await Http(EndpointOf(*inst), http::verb::post, "/global/dispose", seconds(3));
            if (!r.ok()) Log(LogLevel::Info) << "POST /global/dispose: " << r.Describe();
        }
        if (!inst->exited) {
            seen = proc_->Descendants(inst->pid);
            launcher_->SignalGroup(inst->pid, SIGTERM);
            if (!co_await WaitUntil([&] { return inst->exited; }, SteadyClock::now() + settings_.stop_timeout)) {
                Log(LogLevel::Warning) << "opencode server (pid " << inst->pid << ") ignored SIGTERM for "
                                       << FormatDuration(settings_.stop_timeout) << "; sending SIGKILL";
                launcher_->SignalGroup(inst->pid, SIGKILL);
                if (!co_await WaitUntil([&] { return inst->exited; }, SteadyClock::now() + seconds(5)))
                    Log(LogLevel::Error) << "opencode server (pid " << inst->pid << ") survived SIGKILL for 5s";
            }
        }
    }
    co_await KillLeftovers(std::string(kTagVariable) + "=" + inst->tag, std::move(seen));
    inst->CloseStreams();
}

asio::awaitable<void> ServerSupervisor::KillLeftovers(const std::string& env_marker, std::vector<ProcStat> seen)
{
    // Processes descending from the server (seen before it was signalled) and any process that
    // carries its marker in the environment: tool processes in their own sessions, orphans.
    std::map<int, uint64_t> victims;
    for (const ProcStat& s : seen) victims[s.pid] = s.start_time;
    for (int pid : proc_->Pids()) {
        if (pid == getpid() || victims.count(pid)) continue;
        if (proc_->EnvironHas(pid, env_marker)) {
            if (auto st = proc_->Stat(pid); st && st->state != 'Z') victims[pid] = st->start_time;
        }
    }
    auto gone = [&](int pid, uint64_t start) {
        auto st = proc_->Stat(pid);
        // A zombie of ours is about to be reaped by the SIGCHLD handler: wait for that.
        return !st || st->start_time != start || (st->state == 'Z' && st->ppid != getpid());
    };
    std::erase_if(victims, [&](const auto& v) { return gone(v.first, v.second); });
    if (victims.empty()) co_return;
    std::string pids;
    for (const auto& [pid, start] : victims) pids += (pids.empty() ? "" : " ") + std::to_string(pid);
    Log(LogLevel::Info) << "ending " << victims.size() << " process(es) the opencode server left: " << pids;
    output_log_->Write("[ralphd " + LocalTimestamp() + "] ending processes the server left: " + pids);

    for (int sig : {SIGTERM, SIGKILL}) {
        for (const auto& [pid, start] : victims) SignalIfSame(pid, start, sig, true);
        auto deadline = SteadyClock::now() + (sig == SIGTERM ? milliseconds(1000) : milliseconds(3000));
        while (SteadyClock::now() < deadline) {
            std::erase_if(victims, [&](const auto& v) { return gone(v.first, v.second); });
            if (victims.empty()) co_return;
            co_await Sleep(milliseconds(20));
        }
    }
    pids.clear();
    for (const auto& [pid, start] : victims) pids += (pids.empty() ? "" : " ") + std::to_string(pid);
    Log(LogLevel::Error) << "processes left by the opencode server survived SIGKILL: " << pids;
}

asio::awaitable<void> ServerSupervisor::StopManaged(const std::string& why)
{
    if (stopping_) {
        co_await WaitUntil([&] { return !stopping_; }, kForever);
        co_return;
    }
    stopping_ = true;
    stop_requested_ = true;
    ++stops_begun_;
    stop_why_ = why;
    Wake();
    int pid = 0, port = 0;
    std::set<int> ports;  // every port a stopped instance listened on
    for (int round = 0; round < 3; ++round) {  // Supervise may have launched one more meanwhile
        if (auto inst = current_) {
            if (!inst->exited) pid = inst->pid, port = inst->port;
            if (inst->listening) ports.insert(inst->port);
            co_await Terminate(inst, true);
            if (current_ == inst) current_.reset();
        }
        co_await WaitUntil([&] { return !supervising_; }, kForever);
        if (!current_) break;
    }
    // A stop is reported once the port is closed too (SPEC §7), so the next start can have it.
    for (int p : ports) {
        auto deadline = SteadyClock::now() + seconds(5);
        while (!PortFree(p) && SteadyClock::now() < deadline) co_await Sleep(milliseconds(20));
        if (!PortFree(p)) Log(LogLevel::Warning) << "port " << p << " still listens after the opencode server stopped";
    }
    healthy_ = false;
    RecordManaged(std::nullopt);
    policy_.Reset();
    fatal_reason_.clear();
    restarts_ = 0;
    stop_requested_ = false;
    stopping_ = false;
    ++stops_;
    if (pid) Event("stopped", pid, port, why);
    SetState(ServerState::Stopped);
}

// ---------------------------------------------------------------------------------------------
// The public operations

asio::awaitable<ServerEndpoint> ServerSupervisor::Ensure()
{
    if (shutting_down_) throw RpcError(kServerUnavailable, "ralphd is shutting down; the opencode server is not available");
    if (external_) co_return co_await EnsureExternal();
    uint64_t waiting_for = 0;  // the start attempt this call waits on
    const uint64_t stops = stops_;
    for (;;) {
        if (shutting_down_) throw RpcError(kServerUnavailable, "ralphd is shutting down; the opencode server is not available");
        if (stopping_) {
            co_await WaitUntil([&] { return !stopping_; }, kForever);
            // A stop that cancelled the start we waited for is not undone behind the user's back.
            if (waiting_for && stops_ != stops)
                throw RpcError(kServerUnavailable, "the opencode server was stopped while it was starting (ralph server stop)");
            continue;
        }
        switch (state_) {
        case ServerState::Running:
            if (healthy_ && current_ && !current_->exited) co_return EndpointOf(*current_);
            break;  // a health check failed: wait for the next verdict
        case ServerState::Stopped:
            BeginSupervising();
            continue;
        case ServerState::Fatal:
            throw RpcError(kServerUnavailable, FatalMessage());
        case ServerState::Starting:
            if (!waiting_for) waiting_for = attempt_;
            break;
        case ServerState::Backoff:
        case ServerState::Unhealthy:
            if (waiting_for && failed_attempt_ >= waiting_for) {
                std::string retry = state_ == ServerState::Backoff
                                        ? "ralphd tries again in " +
                                              FormatDuration(std::max<Millis>(Millis(0), std::chrono::duration_cast<Millis>(
                                                                                             next_restart_at_ - SteadyClock::now())))
                                        : "ralphd tries again";
                throw RpcError(kServerUnavailable, "the opencode server did not start: " + last_error_ + "; " + retry +
                                                       " (see " + log_path_ + ")");
            }
            break;
        case ServerState::External:
            break;
        }
        ServerState seen = state_;
        uint64_t attempt = attempt_;
        bool healthy = healthy_;
        co_await WaitUntil(
            [&] { return state_ != seen || attempt_ != attempt || healthy_ != healthy || stopping_ || shutting_down_; },
            kForever);
    }
}

asio::awaitable<ServerEndpoint> ServerSupervisor::EnsureExternal()
{
    if (!external_url_error_.empty()) throw RpcError(kServerUnavailable, external_url_error_);
    if (healthy_) co_return external_endpoint_;
    HttpResult r = co_await Http(external_endpoint_, http::verb::get, "/global/health", HealthTimeout());
    std::string version;
    if (HealthyReply(r, &version)) {
        healthy_ = true;
        version_ = version;
        last_error_.clear();
        co_return external_endpoint_;
    }
    healthy_ = false;
    last_error_ = r.Describe();
    std::string fix = r.status == 401 ? "set server.password in ralphd.conf to its OPENCODE_SERVER_PASSWORD"
                                      : "start it, or fix server.url in ralphd.conf";
    throw RpcError(kServerUnavailable, "the external opencode server at " + settings_.url +
                                           " does not answer /global/health (" + last_error_ + "); " + fix);
}

asio::awaitable<void> ServerSupervisor::WatchExternal()
{
    auto alive = alive_;
    while (!shutting_down_) {
        HttpResult r = co_await Http(external_endpoint_, http::verb::get, "/global/health", HealthTimeout());
        if (shutting_down_) break;
        std::string version;
        bool ok = HealthyReply(r, &version);
        if (ok != healthy_) {
            if (ok) Log(LogLevel::Info) << "the external opencode server at " << settings_.url << " is healthy";
            else Log(LogLevel::Warning) << "the external opencode server at " << settings_.url << ": " << r.Describe();
            healthy_ = ok;
            Wake();
        }
        if (ok) {
            version_ = version;
            last_error_.clear();
        } else {
            last_error_ = r.Describe();
        }
        co_await WaitUntil([&] { return shutting_down_; }, SteadyClock::now() + settings_.health_interval);
    }
    watching_external_ = false;
    Wake();
}

asio::awaitable<void> ServerSupervisor::Start()
{
    if (external_) {
        co_await Ensure();
        co_return;
    }
    if (shutting_down_) throw RpcError(kServerUnavailable, "ralphd is shutting down");
    if (stopping_) co_await WaitUntil([&] { return !stopping_; }, kForever);
    if (state_ == ServerState::Fatal) {
        // An explicit start clears `fatal` and the start-limit history.
        policy_.Reset();
        fatal_reason_.clear();
        restarts_ = 0;
        Event("explicit_start", 0, 0, "after fatal");
        SetState(ServerState::Stopped);
    } else if (state_ == ServerState::Backoff) {
        start_now_ = true;
        Wake();
    }
    co_await Ensure();
}

asio::awaitable<void> ServerSupervisor::Stop()
{
    if (external_)
        throw RpcError(kInvalidState, "server.mode is external: ralph does not start or stop the server at " +
                                          settings_.url + "; stop it where it was started");
    co_await StopManaged("stop requested");
}

asio::awaitable<void> ServerSupervisor::Restart()
{
    if (external_)
        throw RpcError(kInvalidState, "server.mode is external: ralph does not restart the server at " + settings_.url +
                                          "; restart it where it was started");
    co_await StopManaged("restart requested");
    co_await Start();
}

void ServerSupervisor::ApplySettings(const ServerSettings& settings)
{
    const ServerSettings kept = settings_;
    settings_ = settings;
    settings_.mode = kept.mode;  // external mode is set up when ralphd starts
    settings_.url = kept.url;
    settings_.password = kept.password;
    RestartPolicy::Limits limits = policy_.limits();
    limits.max = settings_.restart_backoff_max;
    limits.burst = settings_.start_limit_burst;
    limits.interval = settings_.start_limit_interval;
    policy_.SetLimits(limits);
    if (state_ == ServerState::Fatal) {
        policy_.Reset();
        fatal_reason_.clear();
        restarts_ = 0;
        Event("config_reloaded", 0, 0, "after fatal: the next need starts the server again");
        SetState(ServerState::Stopped);
    }
}

asio::awaitable<void> ServerSupervisor::Shutdown()
{
    if (shut_down_) co_return;
    if (shutting_down_) {
        co_await WaitUntil([&] { return shut_down_; }, kForever);
        co_return;
    }
    shutting_down_ = true;
    Wake();
    if (!external_) co_await StopManaged("daemon shutdown");
    co_await WaitUntil([&] { return !watching_external_; }, SteadyClock::now() + seconds(10));
    shut_down_ = true;
    Wake();
}

// ---------------------------------------------------------------------------------------------
// After a crash of the previous daemon

void ServerSupervisor::ReconcileLeftovers()
{
    StopRecordedLeftover();
    // A daemon killed between starting a server and recording it leaves one nobody recorded; and
    // a server that died leaves its tools. Both carry our state directory in their environment,
    // and nothing of ours runs yet: whatever carries it now is a leftover.
    std::map<int, uint64_t> victims;
    const std::string owner = std::string(kOwnerVariable) + "=" + state_dir_;
    for (int pid : proc_->Pids()) {
        if (pid == getpid()) continue;
        auto st = proc_->Stat(pid);
        if (st && st->state != 'Z' && proc_->EnvironHas(pid, owner)) victims[pid] = st->start_time;
    }
    if (victims.empty()) return;
    std::string pids;
    for (const auto& [pid, start] : victims) pids += (pids.empty() ? "" : " ") + std::to_string(pid);
    Log(LogLevel::Warning) << "stopping processes a previous ralphd left without a record (pids " << pids << ")";
    auto dead = [&](int pid, uint64_t start) {
        auto st = proc_->Stat(pid);
        return !st || st->start_time != start || st->state == 'Z';
    };
    for (int sig : {SIGTERM, SIGKILL}) {
        for (const auto& [pid, start] : victims) SignalIfSame(pid, start, sig, true);
        auto deadline = SteadyClock::now() + (sig == SIGTERM ? Millis(settings_.stop_timeout) : Millis(seconds(5)));
        while (SteadyClock::now() < deadline) {
            std::erase_if(victims, [&](const auto& v) { return dead(v.first, v.second); });
            if (victims.empty()) break;
            std::this_thread::sleep_for(milliseconds(20));
        }
        if (victims.empty()) break;
    }
    if (!victims.empty()) Log(LogLevel::Error) << "leftover processes survived SIGKILL: " << victims.size();
    Event("leftover_stopped", 0, 0, "unrecorded processes of a previous ralphd: pids " + pids);
}

void ServerSupervisor::StopRecordedLeftover()
{
    std::optional<ManagedServerRecord> record;
    try {
        record = store_.GetManagedServer();
    } catch (const std::exception& e) {
        Log(LogLevel::Error) << "cannot read the managed server record: " << e.what();
        return;
    }
    if (!record) return;
    auto st = proc_->Stat(record->pid);
    std::string cmdline;
    for (const std::string& a : proc_->Cmdline(record->pid)) cmdline += (cmdline.empty() ? "" : " ") + a;
    bool same = st && st->state != 'Z' && st->start_time == record->start_time &&
                cmdline.find("opencode") != std::string::npos;
    if (!same) {
        Log(LogLevel::Info) << "the opencode server a previous ralphd started (pid " << record->pid
                            << ") is gone; pid " << record->pid << (st ? " now belongs to another process" : " is free");
        Event("leftover_gone", record->pid, record->port, "");
        RecordManaged(std::nullopt);
        return;
    }
    Log(LogLevel::Warning) << "stopping the opencode server a previous ralphd left running (pid " << record->pid
                           << ", port " << record->port << ")";
    // Its tool processes: descendants now, and whatever carries OPENCODE_PID=<pid> and started after it.
    std::map<int, uint64_t> victims;
    for (const ProcStat& d : proc_->Descendants(record->pid)) victims[d.pid] = d.start_time;
    std::string marker = "OPENCODE_PID=" + std::to_string(record->pid);
    for (int pid : proc_->Pids()) {
        if (pid == record->pid || pid == getpid() || victims.count(pid)) continue;
        auto s = proc_->Stat(pid);
        if (s && s->state != 'Z' && s->start_time >= record->start_time && proc_->EnvironHas(pid, marker))
            victims[pid] = s->start_time;
    }
    // Its password went with the previous daemon, so no dispose: SIGTERM, then SIGKILL.
    auto dead = [&](int pid, uint64_t start) {
        auto s = proc_->Stat(pid);
        return !s || s->start_time != start || s->state == 'Z';
    };
    auto wait_dead = [&](Millis limit) {
        auto deadline = SteadyClock::now() + limit;
        while (!dead(record->pid, record->start_time) && SteadyClock::now() < deadline)
            std::this_thread::sleep_for(milliseconds(20));
        return dead(record->pid, record->start_time);
    };
    SignalIfSame(record->pid, record->start_time, SIGTERM, true);
    if (!wait_dead(settings_.stop_timeout)) {
        SignalIfSame(record->pid, record->start_time, SIGKILL, true);
        if (!wait_dead(seconds(5)))
            Log(LogLevel::Error) << "the leftover opencode server (pid " << record->pid << ") survived SIGKILL";
    }
    // Its leader shows as a zombie while its other threads, which share the listening socket,
    // still exit: wait for the port too, so the new server can have it.
    for (auto deadline = SteadyClock::now() + seconds(3); !PortFree(record->port) && SteadyClock::now() < deadline;)
        std::this_thread::sleep_for(milliseconds(20));
    for (int sig : {SIGTERM, SIGKILL}) {
        std::erase_if(victims, [&](const auto& v) { return dead(v.first, v.second); });
        for (const auto& [pid, start] : victims) SignalIfSame(pid, start, sig, true);
        auto deadline = SteadyClock::now() + seconds(1);
        while (SteadyClock::now() < deadline) {
            std::erase_if(victims, [&](const auto& v) { return dead(v.first, v.second); });
            if (victims.empty()) break;
            std::this_thread::sleep_for(milliseconds(20));
        }
        if (victims.empty()) break;
    }
    Event("leftover_stopped", record->pid, record->port, "left running by a previous ralphd");
    RecordManaged(std::nullopt);
}

}  // namespace ralph
