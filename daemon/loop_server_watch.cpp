// Keeping the one shared server lean (SPEC §8): above server.max_memory it is restarted at a moment
// no iteration is in flight and no other client (an `opencode attach` TUI) is connected — loops
// start no new iteration meanwhile, so none is interrupted — and a project's instance in the
// server is disposed once the project has had no active run for server.instance_idle. Part of
// LoopEngine.
#include "common/log.h"
#include "daemon/loop_active_run.h"

#include <cstdio>
#include <optional>
#include <set>

namespace ralph {

namespace asio = boost::asio;

namespace {

std::string Megabytes(int64_t bytes)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f MB", static_cast<double>(bytes) / (1 << 20));
    return buf;
}

}  // namespace

void LoopEngine::SetServerLimits(int64_t max_memory, Millis instance_idle)
{
    max_memory_ = max_memory;
    instance_idle_ = instance_idle;
    watch_wake_.Notify();
}

void LoopEngine::EndDraining()
{
    if (!draining_) return;
    draining_ = false;
    for (auto& [id, a] : active_) Wake(*a);  // the loops held at their next iteration go on
}

bool LoopEngine::IterationInFlight() const
{
    for (const auto& [id, a] : active_)
        if (a->iterating) return true;
    return false;
}

asio::awaitable<void> LoopEngine::WatchServer()
{
    std::map<std::string, Clock::TimePoint> last_active;  // project (work tree) -> when it last had an active run
    bool said_attached = false;
    while (!shutting_down_) {
        // Both off (an external server, or set so): nothing to watch until SetServerLimits says.
        const bool watching = max_memory_ > 0 || instance_idle_.count() > 0;
        co_await watch_wake_.WaitFor(watching ? std::chrono::seconds(2) : std::chrono::seconds(3600));
        if (shutting_down_) break;
        if (!watching) continue;
        const auto now = clock_.Now();
        std::set<std::string> busy;
        if (instance_idle_.count() > 0) {
            for (const auto& [id, a] : active_)
                if (auto run = store_.GetRun(id)) busy.insert(run->work_root());
            for (const std::string& root : busy) last_active[root] = now;
        }
        const bool live = server_.state() == ServerState::Running && server_.Live().has_value();
        if (!live) {
            EndDraining();
            continue;
        }

        // Only for runs that use it, and once an iteration has ended on it: a fresh server is never
        // restarted before it has worked (a max_memory below a bare server would loop otherwise).
        const int64_t memory = server_.memory();
        if (max_memory_ > 0 && memory > max_memory_ && !active_.empty() && iterations_since_restart_ > 0) {
            if (server_.ForeignClients() > 0) {
                // Someone works in the server: a restart would throw them out. Loops go on.
                if (!said_attached)
                    Log(LogLevel::Info) << "opencode server uses " << Megabytes(memory) << ", above server.max_memory "
                                        << Megabytes(max_memory_) << ", but another client is connected: not restarting it";
                said_attached = true;
                EndDraining();
                continue;
            }
            said_attached = false;
            draining_ = true;  // no new iteration starts; the ones in flight finish
            if (IterationInFlight()) continue;
            const std::string why = "memory " + Megabytes(memory) + " above server.max_memory " + Megabytes(max_memory_);
            Log(LogLevel::Info) << "restarting the opencode server between iterations: " << why;
            iterations_since_restart_ = 0;
            if (Status restarted = co_await server_.Restart(why); !restarted.ok())
                Log(LogLevel::Warning) << "restarting the opencode server for its memory: " << restarted.message();
            EndDraining();
            continue;
        }
        EndDraining();

        // Idle projects' instances, on the same condition (other clients asked once: it reads /proc/net).
        if (instance_idle_.count() <= 0 || IterationInFlight()) continue;
        std::optional<bool> attached;
        for (auto it = last_active.begin(); it != last_active.end();) {
            if (busy.count(it->first) || now - it->second < instance_idle_) {
                ++it;
                continue;
            }
            if (!attached) attached = server_.ForeignClients() > 0;
            if (*attached) break;
            auto endpoint = server_.Live();
            if (!endpoint) break;
            std::unique_ptr<OpencodeClient> opencode = clients_(*endpoint);
            Status disposed = co_await opencode->DisposeInstance(it->first);
            Log(LogLevel::Info) << "disposed the opencode instance of " << it->first << " (no run for "
                                << FormatDuration(instance_idle_) << ", server.instance_idle)"
                                << (disposed.ok() ? "" : ": " + disposed.message());
            it = last_active.erase(it);
        }
    }
}

}  // namespace ralph
