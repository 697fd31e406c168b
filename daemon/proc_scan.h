// Reading /proc (Linux): a process's identity (parent, group, session, start time), its command
// line and environment, its descendants, and the TCP ports processes listen on. The root is a
// parameter so unit tests can point it at a fake tree. Nothing here signals anything.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace ralph {

/// The fields of /proc/PID/stat that identify a process.
struct ProcStat {
    int pid{0};
    int ppid{0};
    int pgid{0};
    int sid{0};
    char state{'?'};          ///< 'R', 'S', 'Z' (zombie), ...
    uint64_t start_time{0};   ///< field 22: clock ticks after boot; with the pid, names one process
};

/// An `opencode serve` process found on the machine.
struct OpencodeServerProcess {
    int pid{0};
    int port{0};  ///< a TCP port it listens on; 0 when none was found
};

/// What FindOpencodeServers learnt, for a caller that scans often (run.list): the pids that are
/// no opencode server, whose command lines it then does not read again, and the port each server
/// listens on (0: none yet). A process can become a server by exec without a new pid, and a
/// server starts listening after it started: the caller forgets the memo now and then
/// (ServerSupervisor: every second).
struct ServerScanMemo {
    std::set<int> not_servers;
    std::map<std::pair<int, uint64_t>, int> ports;  ///< (pid, start time) -> port
    /// The pids of the last scan and the last pid the kernel had handed out then (/proc/loadavg):
    /// while no new pid was handed out, no process can have appeared, and /proc is not listed.
    std::vector<int> pids;
    int last_pid{-1};
};

class ProcFs {
public:
    explicit ProcFs(std::string root = "/proc") : root_(std::move(root)) {}

    std::optional<ProcStat> Stat(int pid) const;
    /// The arguments of /proc/PID/cmdline; empty for a zombie, a kernel thread or a vanished pid.
    std::vector<std::string> Cmdline(int pid) const;
    /// The real uid from /proc/PID/status.
    std::optional<uid_t> Uid(int pid) const;
    /// True when /proc/PID/environ holds exactly this "KEY=VALUE" entry (false when unreadable).
    bool EnvironHas(int pid, std::string_view entry) const;
    /// Every pid present now.
    std::vector<int> Pids() const;
    /// The pid the kernel handed out last (the fifth field of /proc/loadavg); -1 when unreadable.
    int LastPid() const;
    /// Every process descending from `ancestor` (children, grandchildren, ...), not `ancestor` itself.
    std::vector<ProcStat> Descendants(int ancestor) const;
    /// Listening TCP sockets (IPv4 and IPv6) of the given uid: socket inode -> port. On the real
    /// /proc it asks the kernel through sock_diag (reading /proc/net/tcp walks the whole
    /// connection hash: milliseconds); with another root it parses root/net/tcp and tcp6.
    std::map<uint64_t, int> ListeningSockets(uid_t uid) const;
    /// The ports among `listening` whose sockets the process holds open (from /proc/PID/fd).
    std::vector<int> PortsOf(int pid, const std::map<uint64_t, int>& listening) const;
    /// Resident memory (bytes) of every process in process group `pgid`: a server and the tool
    /// processes it started (SPEC §8 server memory). 0 when none is found.
    int64_t GroupRss(int pgid) const;
    /// Established TCP connections to local `port` whose other end is not a socket that process
    /// `own_pid` holds: another client of the server (an `opencode attach` TUI).
    int ForeignConnections(int port, int own_pid) const;
    /// `opencode serve` processes of the uid with the port each listens on. When a launcher and the
    /// program it starts both match (the npm bin as a node script), only the one listening is kept.
    std::vector<OpencodeServerProcess> FindOpencodeServers(uid_t uid, ServerScanMemo* memo = nullptr) const;

    /// Parses the text of a /proc/PID/stat file (the command name may hold spaces and parentheses).
    static std::optional<ProcStat> ParseStat(std::string_view text);
    /// Parses /proc/net/tcp or tcp6: listening sockets of the uid, inode -> port.
    static void ParseTcpTable(std::string_view text, uid_t uid, std::map<uint64_t, int>& out);
    /// An established connection of /proc/net/tcp or tcp6 (st 01), by its local and remote port.
    struct TcpConnection {
        int local_port{0}, remote_port{0};
        uint64_t inode{0};
    };
    static void ParseTcpConnections(std::string_view text, std::vector<TcpConnection>& out);
    /// True for the argv of `opencode serve ...`: some argument naming an opencode binary
    /// (basename starting with "opencode") directly followed by "serve".
    static bool IsOpencodeServe(const std::vector<std::string>& argv);

    const std::string& root() const { return root_; }

private:
    std::string root_;
};

}  // namespace ralph
