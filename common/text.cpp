#include "common/text.h"

#include <cstdint>
#include <cstring>

namespace ralph {

std::size_t Utf8SequenceLength(std::string_view s, std::size_t i)
{
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    if (c < 0x80) return 1;
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;              // no overlong forms
    else if (c == 0xED) n = 3, hi = 0x9F;              // no surrogates
    else if (c >= 0xE1 && c <= 0xEF) n = 3;
    else if (c == 0xF0) n = 4, lo = 0x90;              // no overlong forms
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) n = 4, hi = 0x8F;              // nothing above U+10FFFF
    else return 0;
    if (i + n > s.size()) return 0;
    if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k)
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
    return n;
}

bool IsValidUtf8(std::string_view s)
{
    for (std::size_t i = 0; i < s.size();) {
        // Every reply ralphd writes passes here, and they are nearly all ASCII: eight bytes
        // without a high bit are skipped at once.
        if (i + 8 <= s.size()) {
            uint64_t word;
            std::memcpy(&word, s.data() + i, sizeof word);
            if ((word & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        std::size_t n = Utf8SequenceLength(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string ToValidUtf8(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        std::size_t n = Utf8SequenceLength(s, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
            continue;
        }
        out.append(s, i, n);
        i += n;
    }
    return out;
}

std::string Printable(std::string_view s)
{
    static const char hex[] = "0123456789abcdef";
    auto escape_byte = [](std::string& out, unsigned char c) {
        out += "\\x";
        out += hex[c >> 4];
        out += hex[c & 15];
    };
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t n = Utf8SequenceLength(s, i);
        if (n == 0) {
            escape_byte(out, c);
            ++i;
        } else if (n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) {
            escape_byte(out, static_cast<unsigned char>(s[i + 1]));  // C1 control U+0080..U+009F
            i += 2;
        } else if (n > 1) {
            out.append(s, i, n);
            i += n;
        } else {
            switch (c) {
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            case 0x1b: out += "\\e"; break;
            case '\\': out += "\\\\"; break;
            default:
                if (c < 0x20 || c == 0x7f) escape_byte(out, c);
                else out += static_cast<char>(c);
            }
            ++i;
        }
    }
    return out;
}

std::string LastLines(std::string_view text, int n)
{
    std::size_t end = text.size();
    while (end > 0 && text[end - 1] == '\n') --end;
    std::size_t start = end;
    for (int lines = 0; start > 0; --start)
        if (text[start - 1] == '\n' && ++lines == n) break;
    return std::string(text.substr(start, end - start));
}

}  // namespace ralph
