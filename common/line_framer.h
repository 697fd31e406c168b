// Splits a byte stream into '\n'-terminated lines, refusing any line longer than a limit.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace ralph {

class LineFramer {
public:
    explicit LineFramer(std::size_t max_line) : max_line_(max_line) {}

    /// Appends received bytes. Returns false once a line (complete or not) exceeds the limit;
    /// the stream is then unusable and the connection should be closed.
    bool Append(std::string_view bytes);

    /// The next complete line without its '\n' (a trailing '\r' is kept), or nothing.
    std::optional<std::string> Next();

    bool overflowed() const { return overflowed_; }
    /// Bytes of an unfinished line held back.
    std::size_t pending() const { return buffer_.size() - start_; }

private:
    std::size_t max_line_;
    std::string buffer_;
    std::size_t start_{0};    ///< where the unread part of buffer_ begins
    std::size_t scanned_{0};  ///< bytes after start_ already known to hold no '\n'
    bool overflowed_{false};
};

}  // namespace ralph
