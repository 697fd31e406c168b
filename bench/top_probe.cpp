#include "bench/top_probe.h"

#include <chrono>
#include <thread>
#include <unistd.h>

namespace ralph::bench {

TopProbe::TopProbe(const std::string& ralph, const Env& env) : socket_("ralph-bench-top-" + std::to_string(getpid()))
{
    env_ = env;
    env_["TMUX"] = "";
    env_["TERM"] = "xterm";
    env_["LANG"] = "C.UTF-8";
    int code = -1;
    Capture({"tmux", "-L", socket_, "-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "80", "-y", "24", ralph,
             "top"},
            env_, "", &code);
    if (code != 0) return;
    // The window's process is top itself (no shell in between).
    std::string pid = Capture({"tmux", "-L", socket_, "display-message", "-p", "-t", "top", "#{pane_pid}"}, env_, "", &code);
    if (code == 0) pid_ = static_cast<pid_t>(std::atoi(pid.c_str()));
    for (int i = 0; i < 100 && Screen().find("LAST ACTIVITY") == std::string::npos; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

TopProbe::~TopProbe()
{
    int code = -1;
    Capture({"tmux", "-L", socket_, "kill-server"}, env_, "", &code);
}

std::string TopProbe::Screen()
{
    int code = -1;
    return Capture({"tmux", "-L", socket_, "capture-pane", "-p", "-t", "top"}, env_, "", &code);
}

}  // namespace ralph::bench
