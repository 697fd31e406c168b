// Levelled logging to stderr. When stderr is the systemd journal (JOURNAL_STREAM names it),
// lines carry "<N>" priority prefixes instead of a timestamp.
#pragma once

#include <sstream>
#include <string>

namespace ralph {

enum class LogLevel { Error = 3, Warning = 4, Info = 6, Debug = 7 };

void LogInit(bool debug);
void LogWrite(LogLevel level, const std::string& message);
bool LogDebugEnabled();

/// Usage: Log(LogLevel::Info) << "listening on " << path;  — written when the statement ends.
class Log {
public:
    explicit Log(LogLevel level) : level_(level) {}
    ~Log() { LogWrite(level_, out_.str()); }
    template <typename T>
    Log& operator<<(const T& v)
    {
        out_ << v;
        return *this;
    }

private:
    LogLevel level_;
    std::ostringstream out_;
};

}  // namespace ralph
