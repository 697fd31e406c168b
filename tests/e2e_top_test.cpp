// ralph top end to end, in a terminal: tmux (a server of its own per test, `-L`) runs a shell in
// an 80x24 window; the test types `ralph top`, reads the screen with capture-pane, and drives it
// with send-keys. The real ralphd, ralph and opencode 1.18.33, and the scripted model.
#include "daemon/proc_scan.h"
#include "daemon/store.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <regex>
#include <thread>
#include <unistd.h>
#include <vector>

namespace ralph::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

/// The whole-log view's title. Not "whole log" alone: the table's log title says "Enter: whole log".
const std::string kWholeLogTitle = "whole log (q or Esc: back";

std::string ShellQuote(const std::string& s)
{
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

/// A tmux server of this test's own with one window running an interactive shell in the test's
/// environment; killed (only it) at the end.
class Terminal {
public:
    explicit Terminal(E2EEnv& env) : env_(env)
    {
        static std::atomic<int> n{0};
        socket_ = "ralph-top-test-" + std::to_string(getpid()) + "-" + std::to_string(n++);
        std::string script = env.dir + "/top-shell.sh";
        std::string text;
        for (const auto& [k, v] : env.env)
            text += v.empty() ? "unset " + k + "\n" : "export " + k + "=" + ShellQuote(v) + "\n";
        text += "export LANG=C.UTF-8 PS1='top-test$ '\nexec sh -i\n";
        WriteFile(script, text);
        auto r = Tmux({"-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "80", "-y", "24", "sh", script});
        EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
        started_ = r.exit_code == 0;
    }
    ~Terminal() { Tmux({"kill-server"}); }
    Terminal(const Terminal&) = delete;
    Terminal& operator=(const Terminal&) = delete;

    CommandResult Tmux(std::vector<std::string> args)
    {
        args.insert(args.begin(), {"/usr/bin/env", "tmux", "-L", socket_});  // tmux from PATH
        return RunProgram(args, {{"TMUX", ""}, {"TERM", "xterm"}}, "", 30s);
    }
    std::string Screen() { return Tmux({"capture-pane", "-p", "-t", "top"}).out; }
    /// The screen's lines (tmux leaves trailing blanks out).
    std::vector<std::string> Lines()
    {
        std::vector<std::string> lines;
        std::string s = Screen();
        for (std::size_t start = 0; start < s.size();) {
            auto nl = s.find('\n', start);
            lines.push_back(s.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
            if (nl == std::string::npos) break;
            start = nl + 1;
        }
        return lines;
    }
    void Keys(const std::vector<std::string>& keys)
    {
        std::vector<std::string> args = {"send-keys", "-t", "top"};
        args.insert(args.end(), keys.begin(), keys.end());
        Tmux(args);
    }
    void Type(const std::string& line) { Tmux({"send-keys", "-t", "top", "-l", line}), Keys({"Enter"}); }
    bool WaitScreen(const std::function<bool(const std::string&)>& cond, std::chrono::seconds timeout = 60s)
    {
        return WaitFor([&] { return cond(Screen()); }, timeout);
    }
    bool WaitText(const std::string& text, std::chrono::seconds timeout = 60s)
    {
        return WaitScreen([&](const std::string& s) { return s.find(text) != std::string::npos; }, timeout);
    }
    /// A run's row in the table: below the table's header, the line that starts with its id (log
    /// lines start with a time; above the header, "1 active, ..." would match run 1).
    std::string Row(int64_t id)
    {
        bool in_table = false;
        for (const std::string& line : Lines()) {
            if (in_table && line.rfind(std::to_string(id) + " ", 0) == 0) return line;
            in_table = in_table || line.find("LAST ACTIVITY") != std::string::npos;
        }
        return "";
    }
    bool AlternateScreen() { return Tmux({"display-message", "-p", "-t", "top", "#{alternate_on}"}).out.rfind("1", 0) == 0; }
    bool started() const { return started_; }

    /// Starts `ralph top` and waits for its table.
    bool StartTop()
    {
        Type(std::string(RALPH_PATH) + " top");
        return WaitText("LAST ACTIVITY");
    }
    /// After top has quit: the prompt is back on the normal screen; returns top's exit code.
    int ExitCodeAfterQuit()
    {
        if (!WaitFor([&] { return !AlternateScreen(); }, 30s)) return -1;
        Type("echo \"top-exit=$?\"");
        // The answer, not the typed command (`top-exit=$?`): a digit follows it. It may share a
        // line with the prompt, when the command was typed ahead before the shell printed it.
        static const std::regex answer("top-exit=([0-9]+)");
        std::smatch m;
        std::string s;
        if (!WaitFor([&] { s = Screen(); return std::regex_search(s, m, answer); }, 30s)) return -1;
        return std::stoi(m[1].str());
    }

private:
    E2EEnv& env_;
    std::string socket_;
    bool started_{false};
};

TEST(E2ETop, ShowsARunGoingThroughItsIterationsAndEnding)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "watched", "SLOW:1500 TEXTONLY\n");
    Terminal term(env);
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.StartTop()) << term.Screen();
    json::value run = env.RalphJson({"run", "watched", "-n", "3"}, project);
    std::string id = std::to_string(run.at("id").as_int64());
    // Its row appears running, goes through its iterations, and ends; its log is below, live.
    ASSERT_TRUE(term.WaitScreen([](const std::string& s) { return s.find("watched") != std::string::npos &&
                                                                  s.find("running") != std::string::npos; }))
        << term.Screen();
    ASSERT_TRUE(term.WaitText("2/3", 120s)) << term.Screen();
    ASSERT_TRUE(term.WaitText("stopped", 120s)) << term.Screen();
    // The row comes from run.list, the log from the event stream: the log may say so a paint later.
    // And a capture can fall between top erasing a line and drawing it again: waited for, not read once.
    const std::vector<std::string> expected = {"3/3", "-- run " + id + " log", "iteration started",
                                               "run stopped (max_iterations)", "server: running"};
    EXPECT_TRUE(term.WaitScreen([&](const std::string& s) {
        return std::all_of(expected.begin(), expected.end(),
                           [&](const std::string& text) { return s.find(text) != std::string::npos; });
    })) << term.Screen();
    // Enter: the whole log; q: back to the table.
    term.Keys({"Enter"});
    ASSERT_TRUE(term.WaitText(kWholeLogTitle)) << term.Screen();
    term.Keys({"q"});
    ASSERT_TRUE(term.WaitText("LAST ACTIVITY")) << term.Screen();
    term.Keys({"q"});
    EXPECT_EQ(term.ExitCodeAfterQuit(), 0) << term.Screen();
}

TEST(E2ETop, SStopsTheSelectedRun)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "endless", "SLOW:2000 TEXTONLY\n");
    json::value run = env.RalphJson({"run", "endless", "-n", "100"}, project);
    int64_t id = run.at("id").as_int64();
    Terminal term(env);
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.StartTop()) << term.Screen();
    ASSERT_TRUE(term.WaitText("/100", 120s)) << term.Screen();
    term.Keys({"s"});
    ASSERT_TRUE(term.WaitText("will stop after its iteration")) << term.Screen();
    ASSERT_TRUE(WaitFor(
        [&] {
            json::value status = env.RalphJson({"status", "--json"});
            for (const auto& r : status.at("runs").as_array())
                if (r.at("id").as_int64() == id) return r.at("status") == "stopped" && r.at("reason") == "user";
            return false;
        },
        120s));
    ASSERT_TRUE(term.WaitText("stopped")) << term.Screen();
    // A stopped run cannot be paused: top says what ralphd answered.
    term.Keys({"p"});
    EXPECT_TRUE(term.WaitText("is not active (stopped)")) << term.Screen();
    term.Keys({"q"});
    EXPECT_EQ(term.ExitCodeAfterQuit(), 0) << term.Screen();
}

TEST(E2ETop, PPausesTheSelectedRunAndPResumesIt)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "endless", "SLOW:2000 TEXTONLY\n");
    json::value run = env.RalphJson({"run", "endless", "-n", "100"}, project);
    int64_t id = run.at("id").as_int64();
    auto status_of = [&] {
        json::value status = env.RalphJson({"status", "--json"});
        for (const auto& r : status.at("runs").as_array())
            if (r.at("id").as_int64() == id) return std::string(r.at("status").as_string());
        return std::string();
    };
    Terminal term(env);
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.StartTop()) << term.Screen();
    ASSERT_TRUE(term.WaitText("/100", 120s)) << term.Screen();
    term.Keys({"p"});
    ASSERT_TRUE(term.WaitText("pauses after its current iteration")) << term.Screen();
    ASSERT_TRUE(WaitFor([&] { return status_of() == "paused"; }, 120s));
    // The row, not the log's "paused after iteration N" note: p resumes only a run top shows paused.
    ASSERT_TRUE(WaitFor([&] { return term.Row(id).find("paused") != std::string::npos; }, 60s)) << term.Screen();
    term.Keys({"p"});
    ASSERT_TRUE(term.WaitText("goes on")) << term.Screen();
    ASSERT_TRUE(WaitFor([&] { return status_of() == "running"; }, 60s));
    term.Keys({"S"});
    ASSERT_TRUE(WaitFor([&] { return status_of() == "stopped"; }, 120s));
    term.Keys({"q"});
    EXPECT_EQ(term.ExitCodeAfterQuit(), 0) << term.Screen();
}

TEST(E2ETop, DShowsTheLastIterationsDiffInThePagerAndComesBack)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "writer", "WRITE:made-by-agent.txt=hello PROMISE\n");
    json::value run = env.RalphJson({"run", "writer"}, project);
    env.WaitRunEnd(run.at("id").as_int64());
    const std::string pager_out = env.dir + "/pager.out";
    env.env["PAGER"] = "tee " + pager_out;  // what top pipes `ralph diff` into, written where the test reads it
    Terminal term(env);
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.StartTop()) << term.Screen();
    ASSERT_TRUE(term.WaitText("completed")) << term.Screen();
    term.Keys({"d"});
    ASSERT_TRUE(WaitFor([&] { return ReadFile(pager_out).find("+hello") != std::string::npos; }, 60s))
        << ReadFile(pager_out) << term.Screen();
    EXPECT_NE(ReadFile(pager_out).find("diff --git a/made-by-agent.txt b/made-by-agent.txt"), std::string::npos);
    ASSERT_TRUE(term.WaitText("LAST ACTIVITY")) << term.Screen();  // back on top's screen
    term.Keys({"q"});
    EXPECT_EQ(term.ExitCodeAfterQuit(), 0) << term.Screen();
}

// a: top leaves its screen for `ralph attach <run>`, which becomes the real opencode TUI on the
// run's session; when opencode quits, top's table is back and answers keys.
TEST(E2ETop, AAttachesToTheSelectedRunsSessionInTheOpencodeTuiAndTopComesBack)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "done", "Say the magic words.\nPROMISE\n");
    json::value run = env.RalphJson({"run", "done"}, project);
    const std::string id = std::to_string(run.at("id").as_int64());
    env.WaitRunEnd(run.at("id").as_int64());
    Terminal term(env);
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.StartTop()) << term.Screen();
    ASSERT_TRUE(term.WaitText("completed")) << term.Screen();
    // The prompt the loop sent is not in top's log: on screen it can only come from opencode.
    ASSERT_EQ(term.Screen().find("Say the magic words."), std::string::npos) << term.Screen();
    term.Keys({"a"});
    auto opencode_shown = [](const std::string& s) {
        return s.find("Say the magic words.") != std::string::npos && s.find("ctrl+p commands") != std::string::npos &&
               s.find("LAST ACTIVITY") == std::string::npos;
    };
    ASSERT_TRUE(term.WaitScreen(opencode_shown)) << term.Screen();

    // Ctrl+C quits opencode's TUI (top ignores SIGINT meanwhile). Should the key come before the
    // TUI reads keys, Ctrl+D quits it too, and is nothing to top: a second Ctrl+C could reach top
    // after it is back, and quit it.
    term.Keys({"C-c"});
    auto top_back = [](const std::string& s) {
        return s.find("LAST ACTIVITY") != std::string::npos && s.find("ctrl+p commands") == std::string::npos;
    };
    if (!term.WaitScreen(top_back, 15s)) {
        term.Keys({"C-d"});
        ASSERT_TRUE(term.WaitScreen(top_back)) << term.Screen();
    }
    // Its table redrawn on the alternate screen.
    ASSERT_TRUE(term.WaitText("a attach  q quit")) << term.Screen();
    std::string screen = term.Screen();
    EXPECT_NE(screen.find("completed"), std::string::npos) << screen;
    EXPECT_NE(screen.find("-- run " + id + " log"), std::string::npos) << screen;
    EXPECT_TRUE(term.AlternateScreen());
    // It still answers keys: Enter shows the whole log, q goes back, q quits.
    term.Keys({"Enter"});
    ASSERT_TRUE(term.WaitText(kWholeLogTitle)) << term.Screen();
    term.Keys({"q"});
    ASSERT_TRUE(term.WaitScreen([](const std::string& s) {
        return s.find("LAST ACTIVITY") != std::string::npos && s.find(kWholeLogTitle) == std::string::npos;
    })) << term.Screen();
    // A frame painted after attach returned (the first one back is the old frame restored): the
    // keys on the status line, where top would say "ralph attach <run> exited with N".
    ASSERT_TRUE(term.WaitText("a attach  q quit")) << term.Screen();
    screen = term.Screen();
    EXPECT_EQ(screen.find("exited with"), std::string::npos) << screen;
    term.Keys({"q"});
    EXPECT_EQ(term.ExitCodeAfterQuit(), 0) << term.Screen();
    screen = term.Screen();
    EXPECT_EQ(screen.find("LAST ACTIVITY"), std::string::npos) << screen;
    EXPECT_EQ(screen.find("ctrl+p commands"), std::string::npos) << screen;
}

// ralphd stops under a running top: top says so and waits, retrying, without starting a daemon
// of its own (autostart is for its first contact only); when ralphd is started again top
// reconnects, shows the runs again and follows new ones.
TEST(E2ETop, WaitsForAStoppedDaemonWithoutStartingOneAndReconnectsWhenItIsBack)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "before", "PROMISE\n");
    env.AddTask(project, "after", "PROMISE\n");
    json::value first = env.RalphJson({"run", "before"}, project);
    const int64_t first_id = first.at("id").as_int64();
    env.WaitRunEnd(first_id);
    Terminal term(env);
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.StartTop()) << term.Screen();
    auto row_shows = [&](int64_t id, const std::string& task, const std::string& status) {
        std::string r = term.Row(id);
        return r.find(task) != std::string::npos && r.find(status) != std::string::npos;
    };
    ASSERT_TRUE(WaitFor([&] { return row_shows(first_id, "before", "completed"); }, 60s)) << term.Screen();

    ASSERT_EQ(env.StopDaemon(), 0) << env.DaemonStderr();
    ASSERT_TRUE(term.WaitText("ralphd is not answering; retrying every second")) << term.Screen();
    // A retry found no daemon and started none: the reason shown is now the failed connection.
    ASSERT_TRUE(term.WaitText("retrying every second (cannot connect")) << term.Screen();
    std::this_thread::sleep_for(3s);  // a few more retries (a lower bound: a slower machine only retries less)
    std::string screen = term.Screen();
    EXPECT_NE(screen.find("retrying every second (cannot connect"), std::string::npos) << screen;
    EXPECT_NE(screen.find("LAST ACTIVITY"), std::string::npos) << screen;  // still top, its table kept
    EXPECT_TRUE(term.AlternateScreen());
    int fd = RawConnect(env.socket);
    EXPECT_EQ(fd, -1) << "something answers on " << env.socket << " while no ralphd was started";
    if (fd >= 0) close(fd);

    env.StartDaemon();
    ASSERT_TRUE(term.WaitText("ralphd is back")) << term.Screen();
    ASSERT_TRUE(term.WaitScreen([](const std::string& s) {
        return s.find("not answering") == std::string::npos && s.find("ralph top  server:") != std::string::npos;
    })) << term.Screen();
    // Waited for, not read once: a capture can fall between top erasing a row and drawing it again.
    EXPECT_TRUE(WaitFor([&] { return row_shows(first_id, "before", "completed"); }, 10s)) << term.Screen();
    // Live again: a run started now shows up and ends in the table.
    json::value second = env.RalphJson({"run", "after"}, project);
    const int64_t second_id = second.at("id").as_int64();
    ASSERT_TRUE(WaitFor([&] { return row_shows(second_id, "after", "completed"); }, 120s)) << term.Screen();
    EXPECT_TRUE(WaitFor([&] { return row_shows(first_id, "before", "completed"); }, 10s)) << term.Screen();
    term.Keys({"q"});
    EXPECT_EQ(term.ExitCodeAfterQuit(), 0) << term.Screen();
}

/// A process the test started, signalled and reaped when the test ends, however it ends (pid -1:
/// none, or already reaped).
struct OwnChild {
    pid_t pid{-1};
    int sig{SIGKILL};
    ~OwnChild()
    {
        if (pid <= 0) return;
        kill(pid, sig);
        if (WaitExit(pid, 60s) == -1) kill(pid, SIGKILL), WaitExit(pid, 10s);
    }
};

// ralphd comes back under a running top while it still reconciles what the previous one left: a
// recorded "opencode server" that ignores SIGTERM, which the test itself ends once it has seen
// enough (stop_timeout is far longer), so the warm-up lasts exactly as long as the test needs.
// Meanwhile every store-backed method answers WARMING_UP: top says so in its status line, retries
// each second and answers keys all along; it never waits inside the call, whose "waiting" line on
// stderr would be written over its screen. Once reconciled, top says ralphd is back.
TEST(E2ETop, ADaemonComingBackWhileItReconcilesIsShownAndTopKeepsAnsweringKeys)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "before", "PROMISE\n");
    json::value run = env.RalphJson({"run", "before"}, project);
    ASSERT_TRUE(run.is_object() && run.as_object().contains("id") && run.at("id").is_int64()) << run;
    const int64_t id = run.at("id").as_int64();
    env.WaitRunEnd(id);
    Terminal term(env);
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.StartTop()) << term.Screen();
    auto row_completed = [&] { return term.Row(id).find("completed") != std::string::npos; };
    ASSERT_TRUE(WaitFor(row_completed, 60s)) << term.Screen();

    ASSERT_EQ(env.StopDaemon(), 0) << env.DaemonStderr();
    ASSERT_TRUE(term.WaitText("retrying every second (cannot connect")) << term.Screen();

    // The leftover, recorded as the managed server while no daemon runs. Declared after the next
    // daemon's OwnChild, so that it is ended first: that daemon is warming up until it is gone.
    OwnChild daemon{-1, SIGTERM};
    OwnChild leftover{SpawnProgram({"/bin/bash", "-c", "trap '' TERM; exec -a opencode-leftover sleep 600"}, {},
                                   "/dev/null", "/dev/null")};
    ASSERT_GT(leftover.pid, 0);
    ASSERT_TRUE(WaitFor([&] {
        auto cmd = ProcFs().Cmdline(leftover.pid);
        return !cmd.empty() && cmd[0] == "opencode-leftover";
    }, 30s));
    auto leftover_stat = ProcFs().Stat(leftover.pid);
    ASSERT_TRUE(leftover_stat.has_value());
    ASSERT_TRUE(std::filesystem::exists(env.state_dir + "/ralph.db"));
    RunStore(env.state_dir + "/ralph.db")
        .SetManagedServer(ManagedServerRecord{leftover.pid, leftover_stat->start_time, env.port_base, NowMillis()});

    // Started without waiting for it to answer (StartDaemon waits through the warm-up).
    auto daemon_env = env.env;
    daemon_env["RALPH_SERVER_STOP_TIMEOUT"] = "1h";  // SIGKILL only when the test has long failed
    const std::string daemon_err = env.dir + "/ralphd.warming-up.stderr";
    daemon.pid = SpawnProgram({RALPHD_PATH, "--debug"}, daemon_env, env.dir + "/ralphd.warming-up.stdout", daemon_err);
    ASSERT_GT(daemon.pid, 0);
    auto warming_up = [&] {
        try {
            json::object reply = env.Call("daemon.info");
            const json::value* result = reply.if_contains("result");
            const json::value* w = result && result->is_object() ? result->as_object().if_contains("warming_up") : nullptr;
            return w && w->is_bool() && w->as_bool();
        } catch (const std::exception&) {
            return false;
        }
    };
    ASSERT_TRUE(WaitFor(warming_up, 60s)) << ReadFile(daemon_err);

    // Every screen read from now on is checked for ralph's stderr line "ralph: ralphd is starting
    // (stopping what a previous ralphd left); waiting", which a waiting call writes over the
    // screen. It is shorter than a line, so a wrap can cut at most one of its two ends.
    bool waiting_line = false;
    auto look = [&] {
        std::string s = term.Screen();
        if (s.find("ralph: ralphd is starting") != std::string::npos || s.find("left); waiting") != std::string::npos)
            waiting_line = true;
        return s;
    };
    auto last_line = [&] {
        std::string s = look();
        if (!s.empty() && s.back() == '\n') s.pop_back();
        auto nl = s.rfind('\n');
        return nl == std::string::npos ? s : s.substr(nl + 1);
    };
    const std::string warming_message = "ralphd is starting: it is still stopping what a previous ralphd left";
    auto status_warming = [&] { return last_line().rfind(warming_message, 0) == 0; };
    // The line, when written, comes at top's first WARMING_UP answer: the test fails at once.
    ASSERT_TRUE(WaitFor([&] { return waiting_line || status_warming(); }, 60s)) << term.Screen();
    ASSERT_FALSE(waiting_line) << "a call waited on WARMING_UP and wrote over top's screen:\n" << term.Screen();
    std::string screen = look();
    EXPECT_NE(screen.find("LAST ACTIVITY"), std::string::npos) << screen;  // still top, its table kept
    EXPECT_TRUE(term.AlternateScreen());
    // The header says it too, no longer "not answering".
    ASSERT_TRUE(WaitFor([&] { return look().find("ralph top  ralphd is starting") != std::string::npos; }, 60s))
        << term.Screen();

    // Keys answered while it warms up: Enter opens the whole log, q comes back to the table; the
    // status line still says why the runs are not refreshed.
    term.Keys({"Enter"});
    ASSERT_TRUE(WaitFor([&] { return look().find(kWholeLogTitle) != std::string::npos; }, 60s))
        << term.Screen();
    EXPECT_TRUE(warming_up()) << "the warm-up ended before the test ended it";
    ASSERT_TRUE(WaitFor(status_warming, 60s)) << term.Screen();
    term.Keys({"q"});
    ASSERT_TRUE(WaitFor([&] {
        std::string s = look();
        return s.find("LAST ACTIVITY") != std::string::npos && s.find(kWholeLogTitle) == std::string::npos;
    }, 60s)) << term.Screen();
    EXPECT_TRUE(warming_up()) << "the warm-up ended before the test ended it";
    ASSERT_TRUE(WaitFor(status_warming, 60s)) << term.Screen();
    EXPECT_TRUE(ProcessAlive(leftover.pid));
    EXPECT_FALSE(waiting_line) << "a call waited on WARMING_UP and wrote over top's screen";

    // The warm-up ends when the leftover is gone; top is back on the runs.
    ASSERT_EQ(kill(leftover.pid, SIGKILL), 0);
    EXPECT_EQ(WaitExit(leftover.pid, 30s), 128 + SIGKILL);
    leftover.pid = -1;
    ASSERT_TRUE(term.WaitText("ralphd is back")) << term.Screen() << ReadFile(daemon_err);
    ASSERT_TRUE(term.WaitScreen([](const std::string& s) {
        return s.find("not answering") == std::string::npos && s.find("ralph top  server:") != std::string::npos;
    })) << term.Screen();
    EXPECT_TRUE(WaitFor(row_completed, 10s)) << term.Screen();  // a capture can fall between erase and redraw
    EXPECT_FALSE(warming_up());
    EXPECT_NE(ReadFile(daemon_err).find("stopping the opencode server a previous ralphd left running"), std::string::npos)
        << ReadFile(daemon_err);
    look();
    EXPECT_FALSE(waiting_line) << "a call waited on WARMING_UP and wrote over top's screen";
    term.Keys({"q"});
    EXPECT_EQ(term.ExitCodeAfterQuit(), 0) << term.Screen();
    EXPECT_EQ(term.Screen().find("LAST ACTIVITY"), std::string::npos) << term.Screen();

    ASSERT_EQ(kill(daemon.pid, SIGTERM), 0);
    EXPECT_EQ(WaitExit(daemon.pid, 60s), 0) << ReadFile(daemon_err);
    daemon.pid = -1;
}

TEST(E2ETop, AResizeRedraws)
{
    E2EEnv env;
    env.StartDaemon();
    Terminal term(env);
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.StartTop()) << term.Screen();
    auto keys_on_line = [&](std::size_t n) {
        auto lines = term.Lines();
        return lines.size() >= n && lines[n - 1].find("j/k select") != std::string::npos;
    };
    ASSERT_TRUE(WaitFor([&] { return keys_on_line(24); }, 30s)) << term.Screen();
    term.Tmux({"resize-window", "-t", "top", "-x", "120", "-y", "40"});
    ASSERT_TRUE(WaitFor([&] { return keys_on_line(40); }, 30s)) << term.Screen();
    term.Tmux({"resize-window", "-t", "top", "-x", "80", "-y", "24"});
    ASSERT_TRUE(WaitFor([&] { return keys_on_line(24); }, 30s)) << term.Screen();
    term.Keys({"q"});
    EXPECT_EQ(term.ExitCodeAfterQuit(), 0) << term.Screen();
}

TEST(E2ETop, QAndCtrlCLeaveACleanTerminal)
{
    E2EEnv env;
    env.StartDaemon();
    Terminal term(env);
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.StartTop()) << term.Screen();
    EXPECT_TRUE(term.AlternateScreen());
    term.Keys({"q"});
    EXPECT_EQ(term.ExitCodeAfterQuit(), 0) << term.Screen();
    EXPECT_EQ(term.Screen().find("LAST ACTIVITY"), std::string::npos) << term.Screen();

    term.Type("clear");
    ASSERT_TRUE(term.StartTop()) << term.Screen();
    term.Keys({"C-c"});
    EXPECT_EQ(term.ExitCodeAfterQuit(), 130) << term.Screen();
    EXPECT_EQ(term.Screen().find("LAST ACTIVITY"), std::string::npos) << term.Screen();
    // The terminal still echoes what is typed (curses' modes were undone).
    term.Type("echo typed-back");
    EXPECT_TRUE(term.WaitText("\ntyped-back\n")) << term.Screen();
}

TEST(E2ETop, NotOnATerminalItSaysSo)
{
    E2EEnv env;
    env.StartDaemon();
    auto r = env.Ralph({"top"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("needs a terminal"), std::string::npos) << r.err;
    auto help = env.Ralph({"top", "--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_NE(help.out.find("S                stop it now"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace ralph::test
