// `ralph top` on a terminal of its own while a scenario runs: a private tmux server with one
// 80x24 window running top, whose CPU time the scenario reads (/proc) over its measured window.
#pragma once

#include "bench/process.h"

#include <string>
#include <sys/types.h>

namespace ralph::bench {

class TopProbe {
public:
    /// Starts `ralph top` in a detached tmux window; pid() is 0 when tmux or top did not start.
    TopProbe(const std::string& ralph, const Env& env);
    ~TopProbe();  ///< kills this probe's tmux server only
    TopProbe(const TopProbe&) = delete;
    TopProbe& operator=(const TopProbe&) = delete;

    pid_t pid() const { return pid_; }
    /// What the window shows (to check that top is drawing).
    std::string Screen();

private:
    std::string socket_;
    Env env_;
    pid_t pid_{0};
};

}  // namespace ralph::bench
