#include "client/follow.h"

#include "client/client.h"
#include "client/format.h"
#include "common/duration.h"
#include "common/jsonrpc.h"
#include "common/rpc_client.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <unistd.h>

namespace ralph {

namespace json = boost::json;

namespace {

// What Ctrl-C prints, made before the handler is installed: a handler may only write(2) and _exit.
char g_interrupt_message[256];
std::size_t g_interrupt_length = 0;

void OnInterrupt(int)
{
    ssize_t ignored = write(STDERR_FILENO, g_interrupt_message, g_interrupt_length);
    (void)ignored;
    _exit(kExitInterrupted);
}

/// While a follow runs, Ctrl-C says that the run goes on (it does: only the follower ends).
class InterruptMessage {
public:
    InterruptMessage(int64_t run_id, bool clear_line)
    {
        std::string id = std::to_string(run_id);
        std::string text = std::string(clear_line ? "\r\033[K" : "\n") + "ralph: stopped following; run " + id +
                           " goes on. Stop it with: ralph stop " + id + "\n";
        g_interrupt_length = std::min(text.size(), sizeof g_interrupt_message);
        text.copy(g_interrupt_message, g_interrupt_length);
        struct sigaction sa {};
        sa.sa_handler = OnInterrupt;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &previous_);
    }
    ~InterruptMessage() { sigaction(SIGINT, &previous_, nullptr); }
    InterruptMessage(const InterruptMessage&) = delete;
    InterruptMessage& operator=(const InterruptMessage&) = delete;

private:
    struct sigaction previous_ {};
};

void PrintJsonLine(const json::value& v) { std::cout << json::serialize(v) << "\n" << std::flush; }

}  // namespace

int ExitCodeForRun(const json::object& run)
{
    std::string status = Field(run, "status");
    if (status == "completed") return kExitOk;
    if (status == "stopped") return kExitRunStopped;
    if (status == "failed") return kExitRunFailed;
    return kExitOk;  // still active (running, queued or paused)
}

int ExitCodeForFollow(const FollowResult& result)
{
    if (result.end == FollowResult::End::DaemonStopped) return kExitDaemonStopped;
    return ExitCodeForRun(result.run);
}

FollowResult FollowRun(Client& client, int64_t run_id, const FollowOptions& options)
{
    bool tty = options.print_lines && isatty(STDOUT_FILENO);
    InterruptMessage on_interrupt(run_id, tty);
    RpcClient& rpc = client.Connection();
    json::object params{{"run", run_id}, {"cwd", client.cwd}, {"follow", true}, {"after", 0}};
    rpc.SendLine(json::serialize(jsonrpc::MakeRequest("follow", "run.events", params)) + "\n");

    auto started = std::chrono::steady_clock::now();
    std::string iteration = "-", max_iterations = "?", last_tool = "-";
    json::object budget, state;  // from run.start; the latest state event
    long long run_started_at = 0;
    bool status_shown = false;
    auto clear_status = [&] {
        if (status_shown) std::cout << "\r\033[K";
        status_shown = false;
    };
    auto draw_status = [&] {
        if (!tty) return;
        long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
        std::cout << "\r\033[K" << "iteration " << iteration << "/" << max_iterations << "  " << HumanDuration(ms)
                  << StoriesAndBudgetLeft(state, budget, run_started_at, NowMillis()) << "  last tool: " << last_tool << std::flush;
        status_shown = true;
    };
    auto daemon_stopped = [&](json::object run) {
        clear_status();
        std::cerr << "ralph: ralphd stopped while following run " << run_id
                      << "; the run goes on when ralphd starts again (follow it with: ralph logs " << run_id << " -f)\n";
        return FollowResult{FollowResult::End::DaemonStopped, std::move(run)};
    };
    auto stopped_early = [&] {
        clear_status();
        // The follow request is still open on this connection: drop it, so that the next call
        // does not take the follow's answer for its own.
        client.Disconnect();
        return FollowResult{FollowResult::End::StoppedEarly, {}};
    };
    for (;;) {
        auto wait = std::chrono::milliseconds(1000);
        if (options.give_up_after) {
            auto left = *options.give_up_after -
                        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
            if (left <= std::chrono::milliseconds(0)) return stopped_early();
            wait = std::min(wait, left);
        }
        bool timed_out = false;
        std::optional<std::string> line;
        try {
            line = rpc.TryReadLine(wait, &timed_out);
        } catch (const ConnectionError&) {
            return daemon_stopped({});
        }
        if (timed_out) {
            draw_status();
            continue;
        }
        if (!line) return daemon_stopped({});
        json::value v = json::parse(*line);
        json::object& o = v.as_object();
        if (o.contains("id")) {
            clear_status();
            if (auto* err = o.if_contains("error"))
                throw DaemonError(static_cast<int>(err->at("code").as_int64()), std::string(err->at("message").as_string()));
            json::object result = o["result"].as_object();
            json::object run = result["run"].as_object();
            if (options.print_json) PrintJsonLine(run);
            if (auto* stopping = result.if_contains("daemon_stopping"); stopping && stopping->is_bool() && stopping->as_bool())
                return daemon_stopped(std::move(run));
            return {FollowResult::End::RunEnded, std::move(run)};
        }
        const json::object& event = o["params"].as_object().at("event").as_object();
        std::string kind = Field(event, "kind");
        if (kind == "run.start") {
            max_iterations = Field(event.at("data"), "max_iterations");
            if (auto* b = event.at("data").as_object().if_contains("budget"); b && b->is_object()) budget = b->as_object();
            if (auto* at = event.if_contains("at"); at && at->is_int64()) run_started_at = at->as_int64();
        }
        if (kind == "state") state = event;
        if (kind == "iteration.start") iteration = Field(event, "iteration");
        if (kind == "tool") {
            last_tool = Field(event.at("data"), "tool");
            if (Field(event.at("data"), "title") != "-") last_tool += " " + Field(event.at("data"), "title");
        }
        if (options.print_json) PrintJsonLine(event);
        // State events feed live views; the lines of the log are the stored events.
        if (options.print_lines && kind != "state") {
            clear_status();
            std::cout << EventLine(event, options.verbose) << "\n";
            draw_status();
            if (!tty) std::cout << std::flush;
        }
        if (options.stop_at && options.stop_at(event)) return stopped_early();
    }
}

}  // namespace ralph
