#include "daemon/loop_engine.h"

#include "daemon/daemon.h"

namespace ralph {

LoopEngine::LoopEngine(Daemon& daemon) : daemon_(daemon) {}
LoopEngine::~LoopEngine() = default;

void LoopEngine::ResumeLeftRuns() {}

boost::asio::awaitable<void> LoopEngine::Shutdown() { co_return; }

}  // namespace ralph
