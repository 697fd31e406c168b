#include "common/log.h"

#include "common/paths.h"

#include <cstdio>
#include <ctime>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

namespace ralph {

namespace {
bool g_journal = false;
bool g_debug = false;
}  // namespace

void LogInit(bool debug)
{
    g_debug = debug;
    // JOURNAL_STREAM is "DEV:INODE" of the journal stream; it applies only if stderr is still that stream.
    std::string js = GetEnv("JOURNAL_STREAM");
    struct stat st {};
    if (!js.empty() && fstat(STDERR_FILENO, &st) == 0) {
        unsigned long long dev = 0, ino = 0;
        if (std::sscanf(js.c_str(), "%llu:%llu", &dev, &ino) == 2)
            g_journal = dev == static_cast<unsigned long long>(st.st_dev) && ino == static_cast<unsigned long long>(st.st_ino);
    }
}

bool LogDebugEnabled() { return g_debug; }

void LogWrite(LogLevel level, const std::string& message)
{
    if (level == LogLevel::Debug && !g_debug) return;
    std::string line;
    if (g_journal) {
        line = "<" + std::to_string(static_cast<int>(level)) + ">" + message + "\n";
    } else {
        timeval tv{};
        gettimeofday(&tv, nullptr);
        tm t{};
        localtime_r(&tv.tv_sec, &t);
        char stamp[64];
        std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02d %02d:%02d:%02d.%03d ", t.tm_year + 1900, t.tm_mon + 1,
                      t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(tv.tv_usec / 1000));
        const char* name = level == LogLevel::Error     ? "error: "
                           : level == LogLevel::Warning ? "warning: "
                           : level == LogLevel::Debug   ? "debug: "
                                                        : "";
        line = std::string(stamp) + name + message + "\n";
    }
    // One write per line so concurrent writers do not interleave within a line.
    ssize_t r = write(STDERR_FILENO, line.data(), line.size());
    (void)r;
}

}  // namespace ralph
