// LoopEngine: runs Ralph loops (SPEC §2), one coroutine per running run, on the daemon's io_context.
#pragma once

#include <boost/asio/awaitable.hpp>

namespace ralph {

class Daemon;

class LoopEngine {
public:
    explicit LoopEngine(Daemon& daemon);
    ~LoopEngine();

    /// Picks up runs a previous daemon left running: their unfinished iteration becomes
    /// `interrupted` and they go on from the next iteration.
    void ResumeLeftRuns();
    /// Daemon shutdown: abort in-flight sessions and leave the runs to resume on the next start.
    boost::asio::awaitable<void> Shutdown();

private:
    Daemon& daemon_;
};

}  // namespace ralph
