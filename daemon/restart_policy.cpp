#include "daemon/restart_policy.h"

#include <algorithm>

namespace ralph {

RestartPolicy::RestartPolicy(Limits limits) : limits_(limits), next_delay_(std::min(limits.initial, limits.max)) {}

void RestartPolicy::Prune(TimePoint now) const
{
    while (!starts_.empty() && now - starts_.front() >= limits_.interval) starts_.pop_front();
}

void RestartPolicy::OnStart(TimePoint now)
{
    Prune(now);
    starts_.push_back(now);
}

std::optional<Millis> RestartPolicy::OnFailure(TimePoint now, Millis up_for)
{
    if (up_for >= limits_.stable) next_delay_ = std::min(limits_.initial, limits_.max);
    Prune(now);
    if (static_cast<int>(starts_.size()) >= limits_.burst) return std::nullopt;
    Millis delay = next_delay_;
    next_delay_ = std::min(next_delay_ * 2, limits_.max);
    return delay;
}

void RestartPolicy::Reset()
{
    starts_.clear();
    next_delay_ = std::min(limits_.initial, limits_.max);
}

int RestartPolicy::StartsInWindow(TimePoint now) const
{
    Prune(now);
    return static_cast<int>(starts_.size());
}

}  // namespace ralph
