// What every `ralph` command uses: the global options, the connection to ralphd (started on
// demand), and the exit codes of SPEC §4 and §11.
#pragma once

#include <boost/json.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ralph {

class RpcClient;

enum ExitCode : int {
    kExitOk = 0,
    kExitDaemonError = 1,
    kExitUsage = 2,
    kExitUnreachable = 3,
    kExitRunStopped = 4,
    kExitRunFailed = 5,
    kExitDaemonStopped = 6,  ///< ralphd stopped while a run was followed; the run goes on
    kExitInterrupted = 130,  ///< Ctrl-C of a follower (128 + SIGINT)
};

/// A command-line mistake: printed with the command's usage, exit 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// An error reply from the daemon: message on stderr, exit 1.
struct DaemonError : std::runtime_error {
    DaemonError(int c, const std::string& message) : std::runtime_error(message), code(c) {}
    int code;
};

class Client {
public:
    std::string socket_path;
    bool json_output{false};
    bool autostart{true};
    /// Whether Call waits (saying so on stderr) while ralphd answers WARMING_UP; else that answer
    /// is a DaemonError like any other (ralph top, which must not block or write over its screen).
    bool wait_warming_up{true};
    std::string cwd;

    Client();
    ~Client();

    /// Calls a method and returns its result; throws DaemonError or ConnectionError.
    /// Connects first (starting ralphd when allowed).
    boost::json::value Call(const std::string& method, boost::json::value params = boost::json::object{});
    /// The connection, for streaming methods (run.events with follow).
    RpcClient& Connection();
    /// True when the daemon answers, without starting it.
    bool DaemonAnswers();
    /// Drops the connection (e.g. after daemon.shutdown).
    void Disconnect();

private:
    void Connect();
    void StartDaemon();
    std::unique_ptr<RpcClient> rpc_;
};

/// Prints a JSON value as one document on stdout.
void PrintJson(const boost::json::value& v);
/// "5s", "3m12s", "2h05m", "3d4h" for a duration in milliseconds.
std::string HumanDuration(long long ms);
/// Local time "2026-11-21 14:03" for unix milliseconds; "-" for 0.
std::string HumanTime(long long unix_ms);

}  // namespace ralph
