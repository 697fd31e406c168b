#include "common/paths.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>

namespace ralph {

std::string GetEnv(const char* name)
{
    const char* v = std::getenv(name);
    return v ? v : "";
}

static std::string Home()
{
    std::string home = GetEnv("HOME");
    return home.empty() ? "/tmp" : home;
}

std::string DefaultSocketDir()
{
    if (auto v = GetEnv("XDG_RUNTIME_DIR"); !v.empty()) return v + "/ralph";
    return "/tmp/ralph-" + std::to_string(getuid());
}

std::string DefaultSocketPath()
{
    if (auto v = GetEnv("RALPH_SOCKET"); !v.empty()) return v;
    return DefaultSocketDir() + "/ralphd.sock";
}

std::string CheckPrivateDir(const std::string& dir, bool missing_ok)
{
    struct stat st {};
    if (lstat(dir.c_str(), &st) != 0) {
        if (errno == ENOENT && missing_ok) return "";
        return "cannot use the socket directory " + dir + ": " + std::strerror(errno);
    }
    std::string why;
    if (S_ISLNK(st.st_mode)) why = "it is a symbolic link";
    else if (!S_ISDIR(st.st_mode)) why = "it is not a directory";
    else if (st.st_uid != getuid())
        why = "it belongs to uid " + std::to_string(st.st_uid) + ", not to you (uid " + std::to_string(getuid()) + ")";
    else if ((st.st_mode & 022) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        why = std::string("others may write to it (mode ") + mode + ")";
    }
    if (why.empty()) return "";
    return "refusing the socket directory " + dir + ": " + why +
           "; someone else may have made it to take your requests. Remove it (or set XDG_RUNTIME_DIR"
           " or --socket elsewhere) and try again";
}

std::string CheckSocketDir(const std::string& socket_path, bool missing_ok)
{
    std::string dir = DirName(socket_path);
    if (dir != DefaultSocketDir()) return "";
    return CheckPrivateDir(dir, missing_ok);
}

std::string DefaultStateDir()
{
    if (auto v = GetEnv("RALPH_STATE_DIR"); !v.empty()) return v;
    if (auto v = GetEnv("XDG_STATE_HOME"); !v.empty()) return v + "/ralph";
    return Home() + "/.local/state/ralph";
}

std::string WorktreesDir()
{
    if (auto v = GetEnv("XDG_DATA_HOME"); !v.empty()) return v + "/ralph/worktrees";
    return Home() + "/.local/share/ralph/worktrees";
}

std::string UserConfigDir()
{
    if (auto v = GetEnv("XDG_CONFIG_HOME"); !v.empty()) return v + "/ralph";
    return Home() + "/.config/ralph";
}

std::string DefaultConfigPath()
{
    if (auto v = GetEnv("RALPH_CONFIG"); !v.empty()) return v;
    return UserConfigDir() + "/ralphd.conf";
}

std::string DirName(const std::string& path)
{
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string MakeDirs(const std::string& path, unsigned mode)
{
    if (path.empty()) return "empty directory path";
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) {
        return S_ISDIR(st.st_mode) ? "" : path + " exists and is not a directory";
    }
    std::string parent = DirName(path);
    if (parent != path && parent != "." && parent != "/") {
        if (auto err = MakeDirs(parent, 0700); !err.empty()) return err;
    }
    if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
        return "cannot create directory " + path + ": " + std::strerror(errno);
    return "";
}

std::string RealPath(const std::string& path)
{
    char* r = realpath(path.c_str(), nullptr);
    if (!r) return "";
    std::string out = r;
    std::free(r);
    return out;
}

}  // namespace ralph
