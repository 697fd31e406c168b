// Test harness: a private directory per test with its own socket, state, config and HOME, a real
// ralphd started as a user would, and the real ralph run as a subprocess.
#pragma once

#include "common/rpc_client.h"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

namespace ralph::test {

struct CommandResult {
    int exit_code{-1};
    std::string out;
    std::string err;
};

/// Runs a program to completion; stdout and stderr are captured. env entries override the
/// current environment ("" removes a variable).
CommandResult RunProgram(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                         const std::string& cwd = "", std::chrono::seconds timeout = std::chrono::seconds(120));

/// Starts a program in the background with stdout/stderr to files; returns its pid.
pid_t SpawnProgram(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                   const std::string& stdout_path, const std::string& stderr_path, const std::string& cwd = "");

/// Waits for a child; returns its exit code, 128+signal, or -1 on timeout.
int WaitExit(pid_t pid, std::chrono::milliseconds timeout);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);
bool PathExists(const std::string& path);
/// A raw connection to a Unix socket (for sending malformed bytes); -1 when it fails.
int RawConnect(const std::string& path);
/// True while a process exists and is not a zombie.
bool ProcessAlive(pid_t pid);
/// Output of `--json -f` (one JSON object per line) parsed; a line that is not an object fails the test.
std::vector<boost::json::object> JsonLines(const std::string& out);
/// Polls `cond` every 20 ms until it holds or the timeout passes.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout);

/// `count` consecutive loopback ports (at most 50) that were free when reserved and that no other
/// test process takes while this object lives (a lock file per block under /tmp): tests never
/// name a fixed port, so suites running side by side (other worktrees, ctest -j) do not meet.
class PortBlock {
public:
    explicit PortBlock(int count = 50);
    ~PortBlock();
    PortBlock(const PortBlock&) = delete;
    PortBlock& operator=(const PortBlock&) = delete;
    int first{0};  ///< 0 when no block could be reserved (the test has already failed)

private:
    int lock_fd_{-1};
};

class TestEnv {
public:
    TestEnv();
    ~TestEnv();
    TestEnv(const TestEnv&) = delete;
    TestEnv& operator=(const TestEnv&) = delete;

    std::string dir;         ///< private root, removed at the end
    std::string socket;      ///< dir/run/ralphd.sock
    std::string state_dir;   ///< dir/state
    std::string config_path; ///< dir/config/ralph/ralphd.conf (XDG_CONFIG_HOME = dir/config)
    std::string home;        ///< dir/home
    /// Environment for every program started: RALPH_*, HOME and XDG_* pointing into dir.
    std::map<std::string, std::string> env;

    void WriteConfig(const std::string& text);

    /// Starts ralphd in the foreground (as a child) and waits until it answers daemon.ping;
    /// fails the test with its stderr when it exits or does not answer within 15 s.
    pid_t StartDaemon(const std::vector<std::string>& extra_args = {});
    /// SIGTERM and wait; returns the exit code.
    int StopDaemon();
    void KillDaemon();  ///< SIGKILL and reap
    pid_t daemon_pid() const { return daemon_pid_; }
    std::string DaemonStderr() const;

    CommandResult Ralph(const std::vector<std::string>& args, const std::string& cwd = "",
                        const std::map<std::string, std::string>& extra_env = {},
                        std::chrono::seconds timeout = std::chrono::seconds(120));
    std::unique_ptr<RpcClient> Connect() const;
    /// One request over a fresh connection; returns the reply object.
    boost::json::object Call(const std::string& method, boost::json::value params = boost::json::object{}) const;

    /// Reserves `count` consecutive free loopback ports (at most 50) for this test and returns the
    /// first; they stay reserved until the daemon of this environment has stopped.
    int ReservePorts(int count);

private:
    pid_t daemon_pid_{-1};
    int daemon_starts_{0};
    std::unique_ptr<PortBlock> ports_;  // released after the destructor has stopped the daemon
};

/// ralph-fake-model on a free port; stopped at the end.
class FakeModel {
public:
    explicit FakeModel(const std::string& dir, const std::vector<std::string>& extra_args = {});
    ~FakeModel();
    std::string url;       ///< http://127.0.0.1:PORT
    std::string log_path;  ///< one JSON line per request
    pid_t pid{-1};
};

/// A TestEnv wired for the real opencode 1.18.33 and the scripted model: opencode's HOME and
/// XDG directories are private, its global config names the fake model as its only LLM, and
/// the managed server uses a port range of its own.
class E2EEnv : public TestEnv {
public:
    /// permissive: the opencode config allows everything (as the demo's does); false leaves
    /// opencode's defaults, which ask for outside writes and questions.
    explicit E2EEnv(bool permissive_opencode_config = true, const std::string& extra_daemon_config = "");
    std::unique_ptr<FakeModel> model;
    int port_base{0};  ///< ReservePorts(41): the managed server uses port_base..port_base+40

    /// A git repository under dir/<name> with one commit; returns its path.
    std::string MakeProject(const std::string& name);
    /// tasks/<task>/ in a project with prompt.md (and prd.json when given); returns its path.
    std::string AddTask(const std::string& project, const std::string& task, const std::string& prompt_md,
                        const std::string& prd_json = "");
    /// Waits until run `id` has ended (no longer running, queued or paused); returns run.get's result.
    boost::json::object WaitRunEnd(int64_t id, std::chrono::seconds timeout = std::chrono::seconds(120));
    /// `ralph --json ARGS...` parsed; fails the test unless it exits 0.
    boost::json::value RalphJson(const std::vector<std::string>& args, const std::string& cwd = "");
};

/// The opencode binary the tests use: $RALPH_OPENCODE, else the one scripts/install-opencode installs.
std::string OpencodeBinary();

}  // namespace ralph::test
