// Text that leaves ralph: replies must be UTF-8 (JSON requires it), and what is printed on a
// terminal must not carry control characters (a task name could hold escape sequences).
#pragma once

#include <string>
#include <string_view>

namespace ralph {

/// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not one (overlong forms,
/// surrogates and code points above U+10FFFF are not).
std::size_t Utf8SequenceLength(std::string_view s, std::size_t i);

bool IsValidUtf8(std::string_view s);

/// The text with every byte that is not part of valid UTF-8 replaced by U+FFFD.
std::string ToValidUtf8(std::string_view s);

/// The text with control characters shown visibly, as `ls -b` does: \n, \t, \r, \e, other C0 and
/// C1 controls and DEL as \xHH, and a backslash as \\. Bytes that are not UTF-8 become \xHH too.
std::string Printable(std::string_view s);

/// The last `n` lines of `text`, without its trailing newlines (all of it when it has fewer).
std::string LastLines(std::string_view text, int n);

}  // namespace ralph
