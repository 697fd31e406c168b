#include "daemon/budget.h"

#include <cstdio>

namespace ralph {

std::string FormatUsd(double usd)
{
    char text[64];
    std::snprintf(text, sizeof text, (usd > 0 && usd < 0.01) ? "$%.4f" : "$%.2f", usd);
    return text;
}

std::string BudgetCrossed(const RunBudget& budget, const BudgetSpent& spent)
{
    if (budget.max_cost > 0 && spent.cost >= budget.max_cost)
        return "max_cost: " + FormatUsd(spent.cost) + " spent of " + FormatUsd(budget.max_cost);
    if (budget.max_tokens > 0 && spent.tokens >= budget.max_tokens)
        return "max_tokens: " + std::to_string(spent.tokens) + " used of " + std::to_string(budget.max_tokens);
    if (budget.max_time_ms > 0 && spent.time.count() >= budget.max_time_ms)
        return "max_time: " + FormatDuration(Millis(spent.time.count() / 1000 * 1000)) + " running of " + FormatDuration(Millis(budget.max_time_ms));
    return "";
}

}  // namespace ralph
