// ralph top: the live full-screen view (SPEC §11). The model and the layout are in
// cmd_top_model.*; here: the terminal (ncurses), the keys, and the two connections to ralphd, one
// streaming every run's events (run.events without `run`), one for run.list (at most once a
// second), the selected run's log and the controls.
#include "client/cmd_top_model.h"
#include "client/commands.h"
#include "common/duration.h"
#include "common/errors.h"
#include "common/jsonrpc.h"
#include "common/rpc_client.h"

// Functions, not macros: curses' move(y, x) and friends would take std::move and others over.
#define NCURSES_NOMACROS
#include <curses.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <poll.h>
#include <set>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

namespace ralph {

namespace json = boost::json;

namespace {

using SteadyClock = std::chrono::steady_clock;

volatile sig_atomic_t g_interrupted = 0;
termios g_saved_termios{};
bool g_have_termios = false;

// Ctrl-C: the main loop sees the flag (poll is interrupted) and ends curses. A second Ctrl-C,
// should the loop be stuck, puts the terminal back itself with what a handler may call.
void OnInterrupt(int)
{
    if (g_interrupted) {
        if (g_have_termios) tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_termios);
        static const char restore[] = "\033[?1049l\033[?25h\r\n";
        ssize_t ignored = write(STDOUT_FILENO, restore, sizeof restore - 1);
        (void)ignored;
        _exit(kExitInterrupted);
    }
    g_interrupted = 1;
}

std::string SelfPath()
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("ralph");
}

/// The terminal in curses mode for the object's life; ended on every way out.
class Screen {
public:
    Screen()
    {
        g_have_termios = tcgetattr(STDIN_FILENO, &g_saved_termios) == 0;
        initscr();
        cbreak();
        noecho();
        nonl();
        keypad(stdscr, TRUE);
        nodelay(stdscr, TRUE);
        set_escdelay(25);
        curs_set(0);
        struct sigaction sa {};
        sa.sa_handler = OnInterrupt;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &previous_);  // no SA_RESTART: poll returns at once
    }
    ~Screen()
    {
        endwin();
        sigaction(SIGINT, &previous_, nullptr);
    }
    Screen(const Screen&) = delete;
    Screen& operator=(const Screen&) = delete;

    void Paint(const top::Screen& s)
    {
        erase();
        for (int row = 0; row < static_cast<int>(s.lines.size()) && row < LINES; ++row) {
            int attr = row == s.selected_row || row == s.table_header_row ? A_REVERSE : row == s.log_title_row ? A_BOLD : 0;
            if (attr) attron(attr);
            // Writing the last cell of the last line returns an error (the cursor cannot move on);
            // the cell is written all the same, and nothing scrolls (scrollok is off).
            mvaddstr(row, 0, s.lines[static_cast<std::size_t>(row)].c_str());
            if (attr) attroff(attr);
        }
        refresh();
    }

    /// Leaves the screen, runs a program on the terminal, and comes back when it quits.
    static int RunOutside(const std::vector<std::string>& argv)
    {
        def_prog_mode();
        endwin();
        struct sigaction ignore {}, before {};
        ignore.sa_handler = SIG_IGN;
        sigemptyset(&ignore.sa_mask);
        sigaction(SIGINT, &ignore, &before);  // Ctrl-C belongs to the program meanwhile
        int status = -1;
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGINT, SIG_DFL);
            signal(SIGPIPE, SIG_DFL);
            std::vector<char*> cargv;
            for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
            cargv.push_back(nullptr);
            execv(cargv[0], cargv.data());
            _exit(127);
        }
        if (pid > 0)
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
        sigaction(SIGINT, &before, nullptr);
        reset_prog_mode();
        clearok(curscr, TRUE);
        refresh();
        return pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

private:
    struct sigaction previous_ {};
};

class Top {
public:
    explicit Top(Client& client) : client_(client) {}

    int Run()
    {
        // First contact before the screen: autostart and its errors go to the terminal as usual.
        model_.ApplyList(client_.Call("run.list").as_object());
        client_.autostart = false;  // from now on a daemon that goes away is waited for, not restarted
        client_.wait_warming_up = false;  // one coming back says so in the status line, retried each second
        Screen screen;
        OpenStream();
        bool dirty = true;
        auto last_paint = SteadyClock::time_point{};
        while (!quit_ && !g_interrupted) {
            auto now = SteadyClock::now();
            if (now >= next_poll_) {
                Refresh();
                // What the stream already holds is older than the list just read: take it too, so
                // a row is not painted "stopped" above a log still short of the run's end (what the
                // daemon has not sent yet comes a paint later).
                if (stream_) DrainStream();
                next_poll_ = now + std::chrono::seconds(1);
                dirty = true;
            }
            LoadSelectedLog();
            // Events can come by the hundred: the screen is painted at most ten times a second.
            if (dirty && now - last_paint >= std::chrono::milliseconds(100)) {
                screen.Paint(top::Layout(model_, view_, COLS, LINES, NowMillis()));
                last_paint = now;
                dirty = false;
            }
            auto wake = dirty ? last_paint + std::chrono::milliseconds(100) : next_poll_;
            int timeout = static_cast<int>(std::clamp<int64_t>(
                std::chrono::duration_cast<std::chrono::milliseconds>(wake - SteadyClock::now()).count() + 1, 0, 1000));
            pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {stream_ ? stream_->fd() : -1, POLLIN, 0}};
            poll(fds, 2, timeout);
            // The stream first: a key acts on what top knows, so let it know what has arrived.
            if (stream_ && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && DrainStream()) dirty = true;
            if (ReadKeys()) dirty = true;
        }
        return g_interrupted ? kExitInterrupted : kExitOk;
    }

private:
    void Disconnected(const std::string& why)
    {
        stream_.reset();
        client_.Disconnect();
        view_.disconnected = true;
        view_.disconnected_why = why;
        view_.starting = false;
    }

    void OpenStream()
    {
        try {
            stream_ = std::make_unique<RpcClient>(client_.socket_path);
            json::object params{{"follow", true}};
            if (last_event_id_) params["after"] = last_event_id_;
            stream_->SendLine(json::serialize(jsonrpc::MakeRequest("top", "run.events", params)) + "\n");
        } catch (const std::exception& e) {
            Disconnected(e.what());
        }
    }

    /// run.list (once a second), and back from a lost daemon: reconnect both connections.
    void Refresh()
    {
        try {
            model_.ApplyList(client_.Call("run.list").as_object());
            if (view_.disconnected) {
                view_.disconnected = false;
                view_.message = "ralphd is back";
                loaded_.clear();
                OpenStream();
            }
        } catch (const DaemonError& e) {
            view_.message = e.what();
            view_.starting = view_.disconnected && e.code == kWarmingUp;
        } catch (const std::exception& e) {
            Disconnected(e.what());
        }
    }

    void LoadSelectedLog()
    {
        auto selected = model_.Selected();
        if (!selected || view_.disconnected || loaded_.count(*selected)) return;
        loaded_.insert(*selected);
        try {
            json::value r = client_.Call("run.events", json::object{{"run", *selected}});
            if (auto* events = r.as_object().if_contains("events"); events && events->is_array())
                model_.SetLog(*selected, events->as_array());
        } catch (const DaemonError& e) {
            view_.message = e.what();
        } catch (const std::exception& e) {
            Disconnected(e.what());
        }
    }

    /// Every complete line the stream has; true when something changed.
    bool DrainStream()
    {
        bool changed = false;
        try {
            for (;;) {
                bool timed_out = false;
                auto line = stream_->TryReadLine(std::chrono::milliseconds(0), &timed_out);
                if (timed_out) break;
                if (!line) throw ConnectionError("ralphd closed the connection");
                boost::system::error_code ec;
                json::value v = json::parse(*line, ec);
                if (ec || !v.is_object()) continue;
                json::object& o = v.as_object();
                if (o.contains("id")) throw ConnectionError("ralphd is stopping");  // the follow's answer
                auto* params = o.if_contains("params");
                if (!params || !params->is_object()) continue;
                if (auto* e = params->as_object().if_contains("event"); e && e->is_object())
                    if (auto* id = e->as_object().if_contains("id"); id && id->is_int64())
                        last_event_id_ = std::max(last_event_id_, id->as_int64());
                model_.ApplyEvent(params->as_object());
                changed = true;
            }
        } catch (const std::exception& e) {
            Disconnected(e.what());
            changed = true;
        }
        return changed;
    }

    bool ReadKeys()
    {
        bool any = false;
        for (int ch = getch(); ch != ERR; ch = getch()) {
            any = true;
            Key(ch);
        }
        return any;
    }

    void Key(int ch)
    {
        auto selected = model_.Selected();
        bool full = view_.full_log;
        switch (ch) {
        case KEY_RESIZE: clearok(curscr, TRUE); return;
        case 'q':
        case 27:  // Esc
            if (full) view_.full_log = false;
            else quit_ = true;
            return;
        case KEY_UP:
        case 'k':
            if (full) ++view_.scroll;
            else model_.Move(-1);
            return;
        case KEY_DOWN:
        case 'j':
            if (full) view_.scroll = std::max(0, view_.scroll - 1);
            else model_.Move(1);
            return;
        case KEY_PPAGE: view_.scroll += std::max(1, LINES - 3); return;
        case KEY_NPAGE: view_.scroll = std::max(0, view_.scroll - std::max(1, LINES - 3)); return;
        case '\r':
        case '\n':
        case KEY_ENTER:
            if (selected) view_.full_log = true, view_.scroll = 0;
            return;
        default: break;
        }
        if (!selected) {
            if (ch < 128 && std::strchr("sSpda", ch)) view_.message = "no run selected";
            return;
        }
        std::string id = std::to_string(*selected);
        if (ch == 's' || ch == 'S') {
            Control("run.stop", json::object{{"run", *selected}, {"now", ch == 'S'}}, "stop", [&](const json::object& r) {
                if (r.contains("stopping") && r.at("stopping").is_bool() && !r.at("stopping").as_bool())
                    return r.contains("message") ? std::string(r.at("message").as_string()) : "run " + id + " is not running";
                return ch == 'S' ? "run " + id + " is stopping now" : "run " + id + " will stop after its iteration";
            });
        } else if (ch == 'p') {
            const top::RunInfo* run = model_.Find(*selected);
            bool paused = run && run->status == "paused";
            Control(paused ? "run.resume" : "run.pause", json::object{{"run", *selected}}, paused ? "resume" : "pause",
                    [&](const json::object& r) {
                        if (auto* m = r.if_contains("message"); m && m->is_string()) return std::string(m->as_string());
                        return paused ? "run " + id + " resumed" : "run " + id + " will pause after its iteration";
                    });
        } else if (ch == 'd') {
            // Its last iteration that has ended (an active run's current one has no snapshot yet).
            const top::RunInfo* run = model_.Find(*selected);
            int64_t n = run ? run->iteration : 0;
            if (run && n > 0 && run->ended_at == 0) --n;
            json::object params{{"run", *selected}, {"stat", true}};
            if (n > 0) params["iteration"] = n;
            bool supported = Control("run.diff", params, "diff", [&](const json::object&) { return std::string(); });
            if (supported && n > 0)
                Outside({"/bin/sh", "-c", "\"$0\" --socket \"$1\" diff \"$2\" --iteration \"$3\" | ${PAGER:-less -R}",
                         SelfPath(), client_.socket_path, id, std::to_string(n)},
                        "ralph diff " + id + " --iteration " + std::to_string(n));
            else if (supported) view_.message = "run " + id + " has no ended iteration yet";
        } else if (ch == 'a') {
            Outside({SelfPath(), "--socket", client_.socket_path, "attach", id}, "ralph attach " + id);
        }
    }

    /// Calls a control method; true when the daemon has it. An older ralphd without it is said so.
    template <typename Say>
    bool Control(const std::string& method, json::object params, const std::string& what, Say say)
    {
        try {
            json::value r = client_.Call(method, std::move(params));
            if (std::string text = say(r.is_object() ? r.as_object() : json::object{}); !text.empty()) view_.message = text;
            return true;
        } catch (const DaemonError& e) {
            if (e.code == -32601) view_.message = what + " needs ralphd support: not in this version";
            else view_.message = what + ": " + e.what();
        } catch (const std::exception& e) {
            Disconnected(e.what());
        }
        return false;
    }

    void Outside(const std::vector<std::string>& argv, const std::string& what)
    {
        stream_.reset();  // nothing piles up on the socket meanwhile; events resume from the last id
        client_.Disconnect();
        int code = Screen::RunOutside(argv);
        view_.message = code == 0 ? "" : what + " exited with " + std::to_string(code);
        if (!view_.disconnected) OpenStream();
        loaded_.clear();
        next_poll_ = SteadyClock::now();
    }

    Client& client_;
    top::Model model_;
    top::View view_;
    std::unique_ptr<RpcClient> stream_;
    std::set<int64_t> loaded_;  ///< runs whose log was read (kept live by the stream since)
    int64_t last_event_id_{0};
    bool quit_{false};
    SteadyClock::time_point next_poll_{};
};

int TopCommand(Client& client, const std::vector<std::string>& args)
{
    CommandArgs vm(*FindCommand("top"), args, nullptr, 0);
    if (client.json_output) throw UsageError("ralph top is a full-screen view; --json is for the other commands");
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        std::cerr << "ralph top: needs a terminal on stdin and stdout; for scripts use `ralph status` or "
                     "`ralph logs -f`\n";
        return kExitDaemonError;
    }
    return Top(client).Run();
}

}  // namespace

const std::vector<Command>& TopCommands()
{
    static const std::vector<Command> commands = {
        {"top", "", "a live full-screen view of the server and every active and recent run, with the selected run's log",
         TopCommand, true, {}, top::kKeysHelp},
    };
    return commands;
}

}  // namespace ralph
