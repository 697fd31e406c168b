// The private world a benchmark runs in: one directory holding opencode's HOME and XDG
// directories, the scripted model, projects with tasks, and any number of ralphd instances, each
// with its own socket, state and config. Nothing outside the directory is touched, and every
// process started here is stopped by pid when its owner goes away.
#pragma once

#include "bench/process.h"
#include "common/rpc_client.h"

#include <boost/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace ralph::bench {

struct Binaries {
    std::string ralph, ralphd, fake_model, opencode, source_dir;
};

class World {
public:
    /// Creates `root` afresh, starts the scripted model and writes opencode's config for it.
    World(std::string root, Binaries bin);
    ~World();
    World(const World&) = delete;
    World& operator=(const World&) = delete;

    const std::string& root() const { return root_; }
    const Binaries& bin() const { return bin_; }
    /// HOME, XDG_*, OPENCODE_* and an unreachable npm registry: what every program gets.
    const Env& env() const { return env_; }
    const std::string& model_url() const { return model_url_; }

    /// A git repository root/<name> with one commit; returns its path.
    std::string MakeProject(const std::string& name);
    /// tasks/<task>/prompt.md in a project.
    void AddTask(const std::string& project, const std::string& task, const std::string& prompt);

    /// A free TCP port on 127.0.0.1 from a range no test uses.
    int FreePort();

private:
    std::string root_;
    Binaries bin_;
    Env env_;
    pid_t model_pid_{-1};
    std::string model_url_;
    int next_port_{0};
};

/// One ralphd with a socket, state directory and config of its own (root/<name>/).
class Ralphd {
public:
    /// Writes `config` (ralphd.conf text) and starts ralphd; waits until it answers daemon.ping.
    /// `bin_dir`: take ralph and ralphd from there instead (another build, for a comparison).
    Ralphd(World& world, const std::string& name, const std::string& config, const std::string& bin_dir = "");
    ~Ralphd();
    Ralphd(const Ralphd&) = delete;
    Ralphd& operator=(const Ralphd&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& socket() const { return socket_; }
    const std::string& state_dir() const { return state_dir_; }
    const std::string& log_path() const { return log_; }
    /// The world's environment plus RALPH_SOCKET, RALPH_STATE_DIR, RALPH_CONFIG, RALPH_NO_AUTOSTART.
    const Env& env() const { return env_; }

    /// One request on a fresh connection; the result, or std::runtime_error with the error.
    boost::json::value Call(const std::string& method, boost::json::value params = boost::json::object{});
    /// `ralph ARGS...` run in `cwd`, timed.
    Finished Ralph(const std::vector<std::string>& args, const std::string& cwd, const std::string& out = "/dev/null");
    /// `ralph --json ARGS...` parsed.
    boost::json::value RalphJson(const std::vector<std::string>& args, const std::string& cwd);
    /// Starts the managed server and waits until it is healthy; returns its pid.
    int StartServer();
    /// The managed server's pid from server.status (0 when none).
    int ServerPid();
    /// daemon.shutdown, then SIGTERM/SIGKILL if needed; idempotent.
    void Stop();

private:
    World& world_;
    std::string ralph_;
    std::string dir_, socket_, state_dir_, log_;
    Env env_;
    pid_t pid_{-1};
};

/// An `opencode serve` the benchmark starts itself (with a password it knows).
class OpencodeServer {
public:
    OpencodeServer(World& world, const std::string& name, const std::string& password);
    ~OpencodeServer();
    OpencodeServer(const OpencodeServer&) = delete;
    OpencodeServer& operator=(const OpencodeServer&) = delete;

    pid_t pid() const { return pid_; }
    int port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    const std::string& password() const { return password_; }
    /// Seconds from exec to a healthy /global/health.
    double startup_s() const { return startup_s_; }
    void Stop();

private:
    pid_t pid_{-1};
    int port_{0};
    std::string password_;
    double startup_s_{0};
};

}  // namespace ralph::bench
