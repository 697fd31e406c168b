// A run's budgets (SPEC §8): what they are, what has been spent, and which one is crossed.
#pragma once

#include "common/duration.h"

#include <cstdint>
#include <string>

namespace ralph {

/// 0 means no limit.
struct RunBudget {
    double max_cost{0};      ///< USD
    int64_t max_tokens{0};   ///< input + output + reasoning over the run
    int64_t max_time_ms{0};  ///< time spent running
    bool any() const { return max_cost > 0 || max_tokens > 0 || max_time_ms > 0; }
};

struct BudgetSpent {
    double cost{0};
    int64_t tokens{0};
    Millis time{0};
};

/// The first budget `spent` has reached, in words for the run's reason_detail
/// ("max_cost: $0.52 spent of $0.50"); empty when none is.
std::string BudgetCrossed(const RunBudget& budget, const BudgetSpent& spent);

/// "$0.52": dollars with two decimals, or more when that would show 0 for a nonzero amount.
std::string FormatUsd(double usd);

}  // namespace ralph
