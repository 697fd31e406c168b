// Running a short-lived command to its end (git for checkpoints; later verify and hooks): its
// output collected, a deadline after which its whole process group is killed. Asynchronous on the
// daemon's io_context thread, through the one ProcessLauncher that reaps ralphd's children.
#pragma once

#include "common/duration.h"
#include "common/status.h"
#include "daemon/process.h"

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <string>

namespace ralph {

struct CommandOutput {
    ExitStatus exit;
    std::string out, err;  ///< each cut after the limit given
    bool timed_out{false};  ///< killed (SIGKILL to its group) at the deadline
    bool ok() const { return !timed_out && exit.code == 0; }
};

/// Starts `spec` and waits until it has exited and both its pipes are closed; at `timeout` its
/// process group gets SIGKILL. Fails only when it could not be started. `started`, when given,
/// receives the child's pid (its process group) once it runs, so that the caller may end it sooner.
boost::asio::awaitable<Result<CommandOutput>> RunChildCommand(ProcessLauncher& launcher, LaunchSpec spec,
                                                              Millis timeout, std::size_t max_output = 1 << 20,
                                                              pid_t* started = nullptr);

}  // namespace ralph
