// LoopEngine's record of one run whose loop is active, shared by loop_engine.cpp and
// loop_checkpoints.cpp (private to them).
#pragma once

#include "daemon/checkpoint.h"
#include "daemon/loop_engine.h"

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <optional>
#include <string>

namespace ralph {

struct LoopEngine::ActiveRun {
    ActiveRun(boost::asio::any_io_executor ex, Clock& clock) : wake(std::move(ex), clock) {}
    int64_t id{0};
    bool stop_now{false};
    bool pause_now{false};
    bool server_lost{false};  ///< the server went away during the current iteration
    bool iterating{false};    ///< inside Iterate(): a session may be in flight
    /// An iteration that ended but whose end is not yet recorded and acted on (the store failed:
    /// a full disk, a locked database). Settled before anything else when the loop picks up again.
    std::optional<IterationRow> unsettled;
    bool unsettled_recorded{false};  ///< its row and iteration.end event are written already
    Notifier wake;            ///< stop --now, server loss, shutdown
    EventHub::Watch* watch{nullptr};
    // Git checkpoints (SPEC §9): the run's work tree once found; none outside git.
    bool checkpoints_prepared{false};
    std::optional<CheckpointRepo> repo;
    std::unique_ptr<Checkpoints> checkpoints;
    std::string head_before;  ///< HEAD when the current iteration began
    /// HEAD as the last checkpoint read it, while nothing of ralph's has moved it since (no
    /// branch commit, no verify command): the next iteration's head_before without asking git,
    /// when that iteration follows at once (not after a pause, a back-off or a wait for the server,
    /// in which the user may commit).
    std::string head_after_checkpoint;
    Clock::TimePoint head_after_checkpoint_at{};
    std::string branch;       ///< the run's own branch in its worktree; empty when in place
    std::string last_snapshot;  ///< where this loop left refs/ralph/runs/<id>; "" to ask git
    std::string verify_output;  ///< a failed verification, for the next prompt's {VERIFY_OUTPUT}
    /// A complete prd.json verified at the loop's top after iteration `.first` (no iteration had
    /// verified it), and whether it passed: asked once, not again while the loop waits there.
    std::optional<std::pair<int, bool>> prd_verified;
    std::string budget_crossed; ///< the budget the last iteration's steps crossed, in words
};

}  // namespace ralph
