#include "common/line_framer.h"

namespace ralph {

bool LineFramer::Append(std::string_view bytes)
{
    if (overflowed_) return false;
    if (start_ > 0 && start_ == buffer_.size()) {
        buffer_.clear();
        start_ = scanned_ = 0;
    } else if (start_ > 65536 && start_ * 2 > buffer_.size()) {
        buffer_.erase(0, start_);
        start_ = 0;
    }
    buffer_.append(bytes);
    // Check the unfinished tail and every complete line in what arrived.
    std::size_t line_start = start_;
    for (std::size_t i = start_ + scanned_; i < buffer_.size(); ++i) {
        if (buffer_[i] == '\n') {
            if (i - line_start > max_line_) overflowed_ = true;
            line_start = i + 1;
        }
    }
    if (buffer_.size() - line_start > max_line_) overflowed_ = true;
    return !overflowed_;
}

std::optional<std::string> LineFramer::Next()
{
    if (overflowed_) return std::nullopt;
    std::size_t nl = buffer_.find('\n', start_ + scanned_);
    if (nl == std::string::npos) {
        scanned_ = buffer_.size() - start_;
        return std::nullopt;
    }
    std::string line = buffer_.substr(start_, nl - start_);
    start_ = nl + 1;
    scanned_ = 0;
    return line;
}

}  // namespace ralph
