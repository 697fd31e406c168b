#include "daemon/proc_scan.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <set>
#include <sys/socket.h>
#include <unistd.h>

namespace ralph {

namespace {

/// The whole content of a (/proc) file, whose reported size is 0; "" when it cannot be read.
std::string Slurp(const std::string& path, std::size_t limit = 4 << 20)
{
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() >= limit) break;
    }
    close(fd);
    return out;
}

template <typename T>
bool ToNumber(std::string_view s, T& out, int base = 10)
{
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
    return ec == std::errc() && ptr == s.data() + s.size();
}

std::vector<std::string_view> Fields(std::string_view line)
{
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        std::size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
        if (i > start) out.push_back(line.substr(start, i - start));
    }
    return out;
}

std::string_view BaseName(std::string_view path)
{
    auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::optional<ProcStat> ProcFs::ParseStat(std::string_view text)
{
    // "pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
    //  stime cutime cstime priority nice num_threads itrealvalue starttime ..."
    auto open = text.find('(');
    auto close = text.rfind(')');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;
    ProcStat st;
    std::string_view pid_text = text.substr(0, open);
    while (!pid_text.empty() && pid_text.back() == ' ') pid_text.remove_suffix(1);
    if (!ToNumber(pid_text, st.pid)) return std::nullopt;
    auto rest = Fields(text.substr(close + 1));
    // rest[0] is field 3 (state), so field N is rest[N - 3].
    if (rest.size() < 20 || rest[0].size() != 1) return std::nullopt;
    st.state = rest[0][0];
    if (!ToNumber(rest[1], st.ppid) || !ToNumber(rest[2], st.pgid) || !ToNumber(rest[3], st.sid) ||
        !ToNumber(rest[19], st.start_time))
        return std::nullopt;
    return st;
}

std::optional<ProcStat> ProcFs::Stat(int pid) const
{
    if (pid <= 0) return std::nullopt;
    return ParseStat(Slurp(root_ + "/" + std::to_string(pid) + "/stat"));
}

std::vector<std::string> ProcFs::Cmdline(int pid) const
{
    std::string raw = Slurp(root_ + "/" + std::to_string(pid) + "/cmdline");
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < raw.size()) {
        std::size_t nul = raw.find('\0', start);
        if (nul == std::string::npos) nul = raw.size();
        out.emplace_back(raw, start, nul - start);
        start = nul + 1;
    }
    return out;
}

std::optional<uid_t> ProcFs::Uid(int pid) const
{
    std::string status = Slurp(root_ + "/" + std::to_string(pid) + "/status");
    auto at = status.find("\nUid:");
    if (at == std::string::npos) return std::nullopt;
    auto end = status.find('\n', at + 1);
    auto fields = Fields(std::string_view(status).substr(at + 5, end == std::string::npos ? std::string::npos : end - at - 5));
    uid_t uid = 0;
    if (fields.empty() || !ToNumber(fields[0], uid)) return std::nullopt;
    return uid;
}

bool ProcFs::EnvironHas(int pid, std::string_view entry) const
{
    std::string env = Slurp(root_ + "/" + std::to_string(pid) + "/environ");
    std::size_t start = 0;
    while (start < env.size()) {
        std::size_t nul = env.find('\0', start);
        if (nul == std::string::npos) nul = env.size();
        if (std::string_view(env).substr(start, nul - start) == entry) return true;
        start = nul + 1;
    }
    return false;
}

std::vector<int> ProcFs::Pids() const
{
    std::vector<int> out;
    DIR* dir = opendir(root_.c_str());
    if (!dir) return out;
    while (dirent* e = readdir(dir)) {
        int pid = 0;
        if (ToNumber(std::string_view(e->d_name), pid) && pid > 0) out.push_back(pid);
    }
    closedir(dir);
    return out;
}

int ProcFs::LastPid() const
{
    // "0.10 0.20 0.30 1/123 4567\n"
    const std::string text = Slurp(root_ + "/loadavg", 256);
    std::vector<std::string_view> fields = Fields(text);
    int pid = -1;
    if (fields.size() < 5) return -1;
    std::string_view last = fields[4];
    if (!last.empty() && last.back() == '\n') last.remove_suffix(1);
    return ToNumber(last, pid) && pid >= 0 ? pid : -1;
}

std::vector<ProcStat> ProcFs::Descendants(int ancestor) const
{
    std::multimap<int, ProcStat> by_parent;
    for (int pid : Pids()) {
        if (auto st = Stat(pid)) by_parent.emplace(st->ppid, *st);
    }
    std::vector<ProcStat> out;
    std::vector<int> todo{ancestor};
    std::set<int> seen{ancestor};
    while (!todo.empty()) {
        int parent = todo.back();
        todo.pop_back();
        auto [begin, end] = by_parent.equal_range(parent);
        for (auto it = begin; it != end; ++it) {
            if (!seen.insert(it->second.pid).second) continue;
            out.push_back(it->second);
            todo.push_back(it->second.pid);
        }
    }
    return out;
}

namespace {

/// Calls `row` with the fields of each socket of /proc/net/tcp or tcp6 in `state` ("0A" listen,
/// "01" established) that has all ten: "sl local_address rem_address st tx:rx tr:when retrnsmt uid
/// timeout inode".
template <typename Row>
void ForEachTcpRow(std::string_view text, std::string_view state, Row row)
{
    std::size_t start = text.find('\n');  // skip the header
    while (start != std::string_view::npos && start < text.size()) {
        std::size_t end = text.find('\n', start + 1);
        std::string_view line = text.substr(start + 1, end == std::string_view::npos ? std::string_view::npos : end - start - 1);
        start = end;
        auto f = Fields(line);
        if (f.size() >= 10 && f[3] == state) row(f);
    }
}

/// The port of an "ADDRESS:PORT" field (hexadecimal).
bool PortOf(std::string_view address, int& port)
{
    auto colon = address.rfind(':');
    return colon != std::string_view::npos && ToNumber(address.substr(colon + 1), port, 16);
}

}  // namespace

void ProcFs::ParseTcpTable(std::string_view text, uid_t uid, std::map<uint64_t, int>& out)
{
    ForEachTcpRow(text, "0A", [&](const std::vector<std::string_view>& f) {
        int port = 0;
        uid_t owner = 0;
        uint64_t inode = 0;
        if (PortOf(f[1], port) && ToNumber(f[7], owner) && ToNumber(f[9], inode) && owner == uid && inode != 0)
            out[inode] = port;
    });
}

void ProcFs::ParseTcpConnections(std::string_view text, std::vector<TcpConnection>& out)
{
    ForEachTcpRow(text, "01", [&](const std::vector<std::string_view>& f) {
        TcpConnection c;
        if (PortOf(f[1], c.local_port) && PortOf(f[2], c.remote_port) && ToNumber(f[9], c.inode)) out.push_back(c);
    });
}

int64_t ProcFs::GroupRss(int pgid) const
{
    if (pgid <= 0) return 0;
    const int64_t page = sysconf(_SC_PAGESIZE);
    int64_t total = 0;
    for (int pid : Pids()) {
        auto st = Stat(pid);
        if (!st || st->pgid != pgid || st->state == 'Z') continue;
        // statm: size resident shared text lib data dt, in pages.
        std::string statm = Slurp(root_ + "/" + std::to_string(pid) + "/statm", 4096);
        auto f = Fields(statm);
        int64_t resident = 0;
        if (f.size() >= 2 && ToNumber(f[1], resident)) total += resident * page;
    }
    return total;
}

int ProcFs::ForeignConnections(int port, int own_pid) const
{
    std::vector<TcpConnection> all;
    ParseTcpConnections(Slurp(root_ + "/net/tcp", 64 << 20), all);
    ParseTcpConnections(Slurp(root_ + "/net/tcp6", 64 << 20), all);
    // The sockets the own process holds, by inode.
    std::set<uint64_t> own;
    std::string fd_dir = root_ + "/" + std::to_string(own_pid) + "/fd";
    if (DIR* dir = opendir(fd_dir.c_str())) {
        while (dirent* e = readdir(dir)) {
            char target[64];
            ssize_t n = readlink((fd_dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
            if (n <= 0) continue;
            target[n] = 0;
            uint64_t inode = 0;
            if (std::sscanf(target, "socket:[%lu]", &inode) == 1) own.insert(inode);
        }
        closedir(dir);
    }
    // The local ports of our own connections to the server; a server-side connection from any
    // other port is someone else's.
    std::set<int> our_ports;
    for (const TcpConnection& c : all)
        if (c.remote_port == port && own.count(c.inode)) our_ports.insert(c.local_port);
    int foreign = 0;
    for (const TcpConnection& server_side : all)
        if (server_side.local_port == port && !our_ports.count(server_side.remote_port)) ++foreign;
    return foreign;
}

namespace {

/// Listening TCP sockets of the uid through NETLINK_SOCK_DIAG, asking for the LISTEN state only.
/// Reading /proc/net/tcp makes the kernel walk every bucket of the established-connection hash
/// (262 144 of them on a 24 GB machine: about 1.3 ms per file whatever the number of sockets);
/// this dump walks only the listening hash (tens of microseconds). False when unavailable.
bool NetlinkListeningSockets(uid_t uid, std::map<uint64_t, int>& out)
{
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) return false;
    bool ok = true;
    for (int family : {AF_INET, AF_INET6}) {
        struct {
            nlmsghdr header;
            inet_diag_req_v2 request;
        } req{};
        req.header.nlmsg_len = sizeof req;
        req.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        req.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        req.request.sdiag_family = static_cast<uint8_t>(family);
        req.request.sdiag_protocol = IPPROTO_TCP;
        req.request.idiag_states = 1u << TCP_LISTEN;
        if (send(fd, &req, sizeof req, 0) != static_cast<ssize_t>(sizeof req)) {
            ok = false;
            break;
        }
        alignas(nlmsghdr) char buf[16384];
        for (bool done = false; ok && !done;) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                ok = false;
                break;
            }
            auto len = static_cast<unsigned>(n);
            for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
                if (h->nlmsg_type == NLMSG_DONE) {
                    done = true;
                    break;
                }
                if (h->nlmsg_type == NLMSG_ERROR) {
                    ok = false;
                    break;
                }
                const auto* msg = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
                if (msg->idiag_uid == uid && msg->idiag_inode != 0) out[msg->idiag_inode] = ntohs(msg->id.idiag_sport);
            }
        }
        if (!ok) break;
    }
    close(fd);
    return ok;
}

}  // namespace

std::map<uint64_t, int> ProcFs::ListeningSockets(uid_t uid) const
{
    std::map<uint64_t, int> out;
    // The live system: ask the kernel directly. A fake root (tests), or no sock_diag: the tables.
    if (root_ == "/proc" && NetlinkListeningSockets(uid, out)) return out;
    out.clear();
    ParseTcpTable(Slurp(root_ + "/net/tcp", 64 << 20), uid, out);
    ParseTcpTable(Slurp(root_ + "/net/tcp6", 64 << 20), uid, out);
    return out;
}

std::vector<int> ProcFs::PortsOf(int pid, const std::map<uint64_t, int>& listening) const
{
    std::set<int> ports;
    std::string fd_dir = root_ + "/" + std::to_string(pid) + "/fd";
    DIR* dir = opendir(fd_dir.c_str());
    if (!dir) return {};
    while (dirent* e = readdir(dir)) {
        if (e->d_name[0] == '.') continue;
        char target[256];
        ssize_t n = readlink((fd_dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
        if (n <= 0) continue;
        std::string_view link(target, static_cast<std::size_t>(n));
        constexpr std::string_view prefix = "socket:[";
        if (link.substr(0, prefix.size()) != prefix || link.back() != ']') continue;
        uint64_t inode = 0;
        if (!ToNumber(link.substr(prefix.size(), link.size() - prefix.size() - 1), inode)) continue;
        if (auto it = listening.find(inode); it != listening.end()) ports.insert(it->second);
    }
    closedir(dir);
    return {ports.begin(), ports.end()};
}

bool ProcFs::IsOpencodeServe(const std::vector<std::string>& argv)
{
    for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
        std::string_view base = BaseName(argv[i]);
        if (base.substr(0, 8) == "opencode" && argv[i + 1] == "serve") return true;
    }
    return false;
}

std::vector<OpencodeServerProcess> ProcFs::FindOpencodeServers(uid_t uid, ServerScanMemo* memo) const
{
    struct Candidate {
        OpencodeServerProcess server;
        int ppid;
    };
    std::vector<Candidate> found;
    std::map<uint64_t, int> listening;
    bool listening_read = false;
    auto no_server = [&](int pid) {
        if (memo) memo->not_servers.insert(pid);
    };
    std::vector<int> pids;
    const int last_pid = memo ? LastPid() : -1;
    if (memo && last_pid >= 0 && last_pid == memo->last_pid) {
        pids = memo->pids;  // no process started since: those that ended are dropped below
    } else {
        pids = Pids();
        if (memo) memo->pids = pids, memo->last_pid = last_pid;
    }
    for (int pid : pids) {
        if (memo && memo->not_servers.count(pid)) continue;
        // A server the memo knows (the same pid and start time) is only checked to be alive: its
        // command line and owner (/proc/PID/status is costly to make) are not read again.
        auto seen = memo ? memo->ports.lower_bound({pid, 0}) : decltype(memo->ports)::iterator{};
        const bool maybe_known = memo && seen != memo->ports.end() && seen->first.first == pid;
        std::optional<ProcStat> st;
        if (maybe_known) st = Stat(pid);
        const bool known = maybe_known && st && st->start_time == seen->first.second;
        if (!known) {
            std::vector<std::string> argv = Cmdline(pid);
            if (!IsOpencodeServe(argv)) {
                no_server(pid);
                continue;
            }
            auto owner = Uid(pid);
            if (!st) st = Stat(pid);
            if (!owner || *owner != uid) {
                no_server(pid);
                continue;
            }
        }
        if (!st || st->state == 'Z') {
            no_server(pid);
            continue;
        }
        const std::pair<int, uint64_t> process{pid, st->start_time};
        int port = 0;
        if (known) {
            port = memo->ports.at(process);
        } else {
            if (!listening_read) {
                listening = ListeningSockets(uid);
                listening_read = true;
            }
            auto ports = PortsOf(pid, listening);
            port = ports.empty() ? 0 : ports.front();
            // A server does not change its port; one not listening yet (or a launcher, which
            // never does) is looked at again when the memo is forgotten.
            if (memo) memo->ports[process] = port;
        }
        found.push_back({{pid, port}, st->ppid});
    }
    // A launcher (node running the npm bin script) and the server it started both match; keep
    // the server: drop a match without a port whose child is also a match.
    std::vector<OpencodeServerProcess> out;
    for (const Candidate& c : found) {
        bool launcher = c.server.port == 0 && std::any_of(found.begin(), found.end(), [&](const Candidate& other) {
                            return other.ppid == c.server.pid;
                        });
        if (!launcher) out.push_back(c.server);
    }
    return out;
}

}  // namespace ralph
