#include "common/duration.h"

#include <ctime>

#include <cctype>

namespace ralph {

std::optional<Millis> ParseDuration(std::string_view text)
{
    if (text.empty()) return std::nullopt;
    long long total = 0;
    std::size_t i = 0;
    bool any = false;
    while (i < text.size()) {
        if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
        long long n = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
            n = n * 10 + (text[i] - '0');
            if (n > 1'000'000'000'000LL) return std::nullopt;
            ++i;
        }
        std::string_view unit;
        std::size_t u = i;
        while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
        unit = text.substr(u, i - u);
        long long factor;
        if (unit.empty()) {
            if (any || i != text.size()) return std::nullopt;  // a bare number stands alone
            factor = 1000;
        } else if (unit == "ms") {
            factor = 1;
        } else if (unit == "s") {
            factor = 1000;
        } else if (unit == "m" || unit == "min") {
            factor = 60'000;
        } else if (unit == "h") {
            factor = 3'600'000;
        } else if (unit == "d") {
            factor = 86'400'000;
        } else {
            return std::nullopt;
        }
        // Bounded so that no product or sum can overflow (1e15 ms is some 31,000 years).
        constexpr long long kMaxMillis = 1'000'000'000'000'000LL;
        if (n > kMaxMillis / factor || total + n * factor > kMaxMillis) return std::nullopt;
        total += n * factor;
        any = true;
    }
    return Millis(total);
}

std::string FormatDuration(Millis d)
{
    long long ms = d.count();
    if (ms == 0) return "0s";
    if (ms % 1000 != 0) return std::to_string(ms) + "ms";
    long long s = ms / 1000;
    std::string out;
    if (s >= 3600) {
        out += std::to_string(s / 3600) + "h";
        s %= 3600;
    }
    if (s >= 60) {
        out += std::to_string(s / 60) + "m";
        s %= 60;
    }
    if (s > 0) out += std::to_string(s) + "s";
    return out;
}

std::string FormatLocalTime(int64_t unix_ms, const char* format)
{
    std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
    std::tm local{};
    localtime_r(&t, &local);
    char buf[64];
    std::size_t n = std::strftime(buf, sizeof buf, format, &local);
    return std::string(buf, n);
}

int64_t NowMillis()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace ralph
