// `ralph attach` end to end, through the real opencode 1.18.33: it targets the right session and
// project for a run of every status, never changes a run (the runs and iterations rows are compared
// byte for byte before and after), starts the server again after `ralph server stop` (and opencode
// still has the old session), prefers a running run with --latest, refuses a session of another
// run, attaches runs imported from the earlier ralph, and really becomes `opencode attach` under a
// terminal, with the password in its environment only.
#include "daemon/opencode_http.h"
#include "daemon/proc_scan.h"
#include "tests/harness.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace ralph::test {
namespace {

namespace json = boost::json;

/// Every row of runs and iterations, each value with its SQLite type, read without writing.
std::string DumpRunRows(const std::string& db_path)
{
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        ADD_FAILURE() << "cannot open " << db_path;
        sqlite3_close(db);
        return "";
    }
    std::string out;
    for (const char* sql : {"SELECT * FROM runs ORDER BY id", "SELECT * FROM iterations ORDER BY run_id, n"}) {
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
            ADD_FAILURE() << sqlite3_errmsg(db);
            break;
        }
        out += std::string(sql) + "\n";
        while (sqlite3_step(s) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(s); ++c) {
                auto* text = sqlite3_column_text(s, c);
                out += std::string(sqlite3_column_name(s, c)) + "=" + std::to_string(sqlite3_column_type(s, c)) + ":" +
                       (text ? reinterpret_cast<const char*>(text) : "") + "|";
            }
            out += "\n";
        }
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return out;
}

int64_t StartRun(E2EEnv& env, const std::vector<std::string>& args, const std::string& cwd)
{
    std::vector<std::string> all = {"run"};
    all.insert(all.end(), args.begin(), args.end());
    return env.RalphJson(all, cwd).at("id").as_int64();
}

/// attach.target over the socket: what the client receives, password included.
json::object Target(E2EEnv& env, json::object params)
{
    auto reply = env.Call("attach.target", std::move(params));
    EXPECT_TRUE(reply.contains("result")) << json::serialize(reply);
    return reply.contains("result") ? reply["result"].as_object() : json::object{};
}

std::string S(const json::value& v) { return v.is_string() ? std::string(v.as_string()) : std::string(); }

std::vector<std::string> Sessions(const json::value& run)
{
    std::vector<std::string> out;
    for (const auto& it : run.at("iterations").as_array()) out.push_back(S(it.at("session_id")));
    return out;
}

/// GET on the server with Basic auth, as a client of opencode would.
HttpResult HttpGet(const std::string& url, const std::string& password, const std::string& target)
{
    ServerEndpoint ep;
    ep.port = std::stoi(url.substr(url.rfind(':') + 1));
    ep.password = password;
    boost::asio::io_context io;
    HttpResult result;
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
            result = co_await HttpCall(ep, boost::beast::http::verb::get, target, "", std::chrono::seconds(10));
        },
        boost::asio::detached);
    io.run();
    return result;
}

std::string DbPath(const E2EEnv& env) { return env.state_dir + "/ralph.db"; }

TEST(E2EAttach, PrintTargetsEveryRunsSessionAndDirectoryAndChangesNoRow)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    std::filesystem::create_directories(project + "/src/deep");
    env.AddTask(project, "done", "PROMISE\n");
    env.AddTask(project, "capped", "TEXTONLY\n");
    env.AddTask(project, "broken", "FAIL401\n");
    env.AddTask(project, "slow", "SLOW:120000 TEXTONLY\n");
    EXPECT_EQ(env.Ralph({"run", "done", "-f"}, project).exit_code, 0);
    EXPECT_EQ(env.Ralph({"run", "capped", "-n", "2", "-f"}, project).exit_code, 4);
    EXPECT_EQ(env.Ralph({"run", "broken", "-f"}, project).exit_code, 5);
    int64_t slow = StartRun(env, {"slow"}, project);
    ASSERT_TRUE(WaitFor(
        [&] {
            auto r = env.Call("run.get", json::object{{"run", slow}});
            return r.contains("result") && r["result"].at("session_id").is_string();
        },
        std::chrono::seconds(60)));
    json::value done = env.RalphJson({"show", "done"}, project);
    json::value capped = env.RalphJson({"show", "capped"}, project);
    json::value broken = env.RalphJson({"show", "broken"}, project);
    json::value running = env.RalphJson({"show", "slow"}, project);
    ASSERT_EQ(S(done.at("status")), "completed");
    ASSERT_EQ(S(capped.at("status")), "stopped");
    ASSERT_EQ(S(broken.at("status")), "failed");
    ASSERT_EQ(S(running.at("status")), "running");
    ASSERT_EQ(Sessions(capped).size(), 2u);

    const std::string rows_before = DumpRunRows(DbPath(env));
    json::object server_target = Target(env, json::object{{"cwd", project}});
    const std::string url = S(server_target.at("url"));
    const std::string password = S(server_target.at("password"));
    const std::string opencode = S(server_target.at("opencode"));
    ASSERT_FALSE(password.empty());
    EXPECT_EQ(opencode, OpencodeBinary());
    EXPECT_TRUE(server_target.at("session").is_null());
    EXPECT_TRUE(server_target.at("run").is_null());

    struct Case {
        const json::value& run;
        std::string note;  // "" for a running run
    };
    std::string id_done = std::to_string(done.at("id").as_int64());
    std::string id_capped = std::to_string(capped.at("id").as_int64());
    std::string id_broken = std::to_string(broken.at("id").as_int64());
    for (const Case& c :
         {Case{done, "run " + id_done + " is completed (promise); showing its last session. Start it again with: ralph run done"},
          Case{capped, "run " + id_capped +
                           " is stopped (max_iterations); showing its last session. Start it again with: ralph run capped"},
          Case{broken, "run " + id_broken +
                           " is failed (consecutive_failures); showing its last session. Start it again with: ralph run broken"},
          Case{running, ""}}) {
        std::string id = std::to_string(c.run.at("id").as_int64());
        auto r = env.Ralph({"attach", id, "--print"}, project);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(r.out, opencode + " attach " + url + " --session " + S(c.run.at("session_id")) + " --dir " + project + "\n");
        EXPECT_EQ(r.err, c.note.empty() ? "" : c.note + "\n");
        EXPECT_EQ(r.out.find(password), std::string::npos);
        EXPECT_EQ(r.err.find(password), std::string::npos);
        // The latest session is the last iteration's.
        EXPECT_EQ(S(c.run.at("session_id")), Sessions(c.run).back());
    }

    // A task name from a subdirectory: the same run, the same command.
    auto r = env.Ralph({"attach", "capped", "--print"}, project + "/src/deep");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, opencode + " attach " + url + " --session " + Sessions(capped)[1] + " --dir " + project + "\n");
    // --session picks another of the run's sessions.
    r = env.Ralph({"attach", "capped", "--session", Sessions(capped)[0], "--print"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, opencode + " attach " + url + " --session " + Sessions(capped)[0] + " --dir " + project + "\n");
    EXPECT_NE(r.err.find("showing its session " + Sessions(capped)[0] + " (iteration 1)"), std::string::npos) << r.err;
    // A session of another run is refused, naming the run's own.
    r = env.Ralph({"attach", "capped", "--session", S(done.at("session_id")), "--print"}, project);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("session " + S(done.at("session_id")) + " is not one of run " + id_capped + "'s sessions"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find(Sessions(capped)[0] + " (iteration 1), " + Sessions(capped)[1] + " (iteration 2)"),
              std::string::npos)
        << r.err;
    r = env.Ralph({"--json", "attach", "capped", "--session", "ses_nope", "--print"}, project);
    EXPECT_EQ(json::parse(r.out).at("error").at("name"), "NOT_FOUND") << r.out;
    // --latest prefers the running run, although others ended after its session began.
    r = env.Ralph({"attach", "--latest", "--print"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, opencode + " attach " + url + " --session " + S(running.at("session_id")) + " --dir " + project + "\n");
    // --session alone finds the run that recorded it.
    r = env.Ralph({"attach", "--session", Sessions(capped)[0], "--print"}, "/");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, opencode + " attach " + url + " --session " + Sessions(capped)[0] + " --dir " + project + "\n");
    // No argument: the server in the caller's project, on opencode's home screen (said on stderr).
    r = env.Ralph({"attach", "--print"}, project + "/src/deep");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, opencode + " attach " + url + " --dir " + project + "\n");
    EXPECT_NE(r.err.find("home screen in " + project), std::string::npos) << r.err;
    // --json: the target, without the password.
    r = env.Ralph({"--json", "attach", "done"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json::value target = json::parse(r.out);
    EXPECT_FALSE(target.as_object().contains("password"));
    EXPECT_EQ(r.out.find(password), std::string::npos);
    EXPECT_EQ(S(target.at("session")), S(done.at("session_id")));
    EXPECT_EQ(S(target.at("directory")), project);
    EXPECT_EQ(S(target.at("run").at("status")), "completed");
    EXPECT_TRUE(target.at("run").at("server_url").is_null());
    // Without a terminal and without --print: a clear error, and the daemon is not even asked.
    r = env.Ralph({"attach", "done"}, project);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("needs a terminal"), std::string::npos) << r.err;
    // Usage errors.
    EXPECT_EQ(env.Ralph({"attach", "done", "--latest", "--print"}, project).exit_code, 2);

    // Not one byte of any run or iteration changed.
    EXPECT_EQ(DumpRunRows(DbPath(env)), rows_before);

    EXPECT_EQ(env.Ralph({"stop", "slow", "--now"}, project).exit_code, 0);
    EXPECT_EQ(S(env.WaitRunEnd(slow).at("status")), "stopped");
}

TEST(E2EAttach, AfterServerStopAttachStartsItAgainAndOpencodeStillHasTheSession)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "done", "WRITE:out.txt=hi COMPLETE_AFTER:1\n");
    EXPECT_EQ(env.Ralph({"run", "done", "-f"}, project).exit_code, 0);
    json::value run = env.RalphJson({"show", "done"}, project);
    std::string session = S(run.at("session_id"));
    ASSERT_FALSE(session.empty());
    std::string old_password = S(Target(env, json::object{{"run", "done"}, {"cwd", project}}).at("password"));

    EXPECT_EQ(env.Ralph({"server", "stop"}, project).exit_code, 0);
    EXPECT_EQ(S(env.RalphJson({"server", "status"}).at("state")), "stopped");
    const std::string rows_before = DumpRunRows(DbPath(env));

    auto r = env.Ralph({"attach", "done", "--print"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(" --session " + session + " --dir " + project), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("is completed (promise)"), std::string::npos) << r.err;
    json::value server = env.RalphJson({"server", "status"});
    EXPECT_EQ(S(server.at("state")), "running");
    EXPECT_NE(r.out.find(" attach " + S(server.at("url")) + " "), std::string::npos) << r.out;

    // A new server with a new password, and it still has the loop's session and its messages.
    json::object target = Target(env, json::object{{"run", "done"}, {"cwd", project}});
    EXPECT_NE(S(target.at("password")), old_password);
    HttpResult got = HttpGet(S(target.at("url")), S(target.at("password")), "/session/" + session);
    EXPECT_EQ(got.status, 200) << got.Describe();
    EXPECT_EQ(S(got.Json().at("id")), session);
    HttpResult messages = HttpGet(S(target.at("url")), S(target.at("password")), "/session/" + session + "/message");
    EXPECT_EQ(messages.status, 200) << messages.Describe();
    EXPECT_GE(messages.Json().as_array().size(), 2u);
    // And without the password, nothing.
    EXPECT_EQ(HttpGet(S(target.at("url")), "", "/session/" + session).status, 401);

    EXPECT_EQ(DumpRunRows(DbPath(env)), rows_before);

    // History imported from the earlier ralph attaches the same way; a session opencode no longer
    // has is a clear error rather than opencode's bare "Session not found".
    std::string legacy = env.dir + "/sessions.db";
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(legacy.c_str(), &db), SQLITE_OK);
    std::string sql =
        "CREATE TABLE sessions (task_name TEXT PRIMARY KEY, task_dir TEXT, pid INTEGER, status TEXT, started_at TEXT, "
        "updated_at TEXT, iteration INTEGER, max_iterations INTEGER, server_port INTEGER, opencode_session_id TEXT);"
        "INSERT INTO sessions VALUES ('done', '" + project + "/tasks/done', 1, 'completed', '1736935845', "
        "'1736935900', 1, 5, 14096, '" + session + "');"
        "INSERT INTO sessions VALUES ('gone', '" + project + "/tasks/gone', 1, 'stopped', '1736935845', "
        "'1736935900', 1, 5, 14096, 'ses_gone');";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    json::value imported = env.RalphJson({"import-legacy", legacy});
    ASSERT_EQ(imported.at("imported"), 2);
    int64_t legacy_done = imported.at("entries").as_array()[0].at("run").as_int64();
    int64_t legacy_gone = imported.at("entries").as_array()[1].at("run").as_int64();
    r = env.Ralph({"attach", std::to_string(legacy_done), "--print"}, project);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(" --session " + session + " --dir " + project + "\n"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("run " + std::to_string(legacy_done) + " is completed; showing its last session"),
              std::string::npos)
        << r.err;
    r = env.Ralph({"attach", std::to_string(legacy_gone), "--print"}, project);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("opencode no longer has session ses_gone of run " + std::to_string(legacy_gone)),
              std::string::npos)
        << r.err;
}

/// A program under a pseudo-terminal (`script`), its stdin a pipe we type into.
struct UnderTerminal {
    pid_t pid{-1};
    int keys{-1};  ///< write end of script's stdin
    std::string out_path;

    UnderTerminal(const std::string& command, const std::map<std::string, std::string>& env_overrides,
                  const std::string& cwd, const std::string& out)
        : out_path(out)
    {
        std::vector<std::string> envs;
        std::map<std::string, std::string> merged;
        for (char** e = environ; *e; ++e) {
            std::string kv = *e;
            auto eq = kv.find('=');
            if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
        for (const auto& [k, v] : env_overrides) {
            if (v.empty()) merged.erase(k);
            else merged[k] = v;
        }
        merged["TERM"] = "xterm-256color";
        merged.erase("OPENCODE_SERVER_PASSWORD");
        for (const auto& [k, v] : merged) envs.push_back(k + "=" + v);
        std::vector<char*> cenv;
        for (auto& e : envs) cenv.push_back(e.data());
        cenv.push_back(nullptr);
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) return;
        pid = fork();
        if (pid == 0) {
            dup2(fds[0], 0);
            int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            dup2(fd, 1);
            dup2(fd, 2);
            if (chdir(cwd.c_str()) != 0) _exit(126);
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, nullptr);
            signal(SIGPIPE, SIG_DFL);
            const char* argv[] = {"/usr/bin/script", "-qefc", command.c_str(), "/dev/null", nullptr};
            execve(argv[0], const_cast<char**>(argv), cenv.data());
            _exit(127);
        }
        close(fds[0]);
        keys = fds[1];
    }
    ~UnderTerminal()
    {
        if (keys >= 0) close(keys);
        if (pid > 0 && WaitExit(pid, std::chrono::milliseconds(0)) == -1) {
            for (const ProcStat& p : ProcFs().Descendants(pid)) kill(p.pid, SIGKILL);
            kill(pid, SIGKILL);
            WaitExit(pid, std::chrono::seconds(5));
        }
    }
    void Type(const std::string& text) const
    {
        if (write(keys, text.data(), text.size()) != static_cast<ssize_t>(text.size())) ADD_FAILURE() << "write";
    }
    std::string Output() const { return ReadFile(out_path); }
};

/// Visible text of terminal output: escape sequences dropped.
std::string Visible(const std::string& raw)
{
    std::string out;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == '\x1b') {
            if (i + 1 < raw.size() && raw[i + 1] == '[') {
                i += 2;
                while (i < raw.size() && !(raw[i] >= '@' && raw[i] <= '~')) ++i;
            } else if (i + 1 < raw.size() && raw[i + 1] == ']') {
                while (i < raw.size() && raw[i] != '\x07' && !(raw[i] == '\x1b' && i + 1 < raw.size() && raw[i + 1] == '\\'))
                    ++i;
            } else {
                ++i;
            }
            continue;
        }
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\n') out += c;
    }
    return out;
}

TEST(E2EAttach, RealOpencodeAttachUnderATerminalReachesTheSessionAndQuitsCleanly)
{
    E2EEnv env;
    env.StartDaemon();
    std::string project = env.MakeProject("proj");
    env.AddTask(project, "done", "Say the magic words.\nPROMISE\n");
    EXPECT_EQ(env.Ralph({"run", "done", "-f"}, project).exit_code, 0);
    json::value run = env.RalphJson({"show", "done"}, project);
    std::string session = S(run.at("session_id"));
    std::string password = S(Target(env, json::object{{"run", "done"}, {"cwd", project}}).at("password"));
    const std::string rows_before = DumpRunRows(DbPath(env));

    UnderTerminal tui(std::string(RALPH_PATH) + " attach done", env.env, project, env.dir + "/tui.out");
    ASSERT_GT(tui.pid, 0);
    // ralph has become opencode: found among script's descendants with the session on its command
    // line and the password only in its environment.
    pid_t opencode_pid = -1;
    ProcFs proc;
    bool found = WaitFor(
        [&] {
            for (const ProcStat& p : proc.Descendants(tui.pid)) {
                auto argv = proc.Cmdline(p.pid);
                bool attach = false, has_session = false;
                for (std::size_t i = 0; i < argv.size(); ++i) {
                    attach = attach || argv[i] == "attach";
                    has_session = has_session || (argv[i] == "--session" && i + 1 < argv.size() && argv[i + 1] == session);
                }
                if (attach && has_session) {
                    opencode_pid = p.pid;
                    return true;
                }
            }
            return false;
        },
        std::chrono::seconds(20));
    ASSERT_TRUE(found) << Visible(tui.Output());
    for (const ProcStat& p : proc.Descendants(tui.pid))
        for (const std::string& arg : proc.Cmdline(p.pid)) EXPECT_EQ(arg.find(password), std::string::npos) << arg;
    EXPECT_TRUE(proc.EnvironHas(opencode_pid, "OPENCODE_SERVER_PASSWORD=" + password));
    // The TUI shows the session: the prompt the loop sent is on screen.
    bool shown = WaitFor([&] { return Visible(tui.Output()).find("Say the magic words.") != std::string::npos; },
                         std::chrono::seconds(30));
    EXPECT_TRUE(shown) << Visible(tui.Output());
    EXPECT_EQ(Visible(tui.Output()).find("Session not found"), std::string::npos);

    // Ctrl+C quits opencode's TUI; script passes its exit status on.
    tui.Type("\x03");
    int code = WaitExit(tui.pid, std::chrono::seconds(15));
    if (code == -1) {
        tui.Type("\x03");
        code = WaitExit(tui.pid, std::chrono::seconds(15));
    }
    EXPECT_EQ(code, 0) << Visible(tui.Output());
    if (code != -1) tui.pid = -1;
    EXPECT_FALSE(ProcessAlive(opencode_pid));

    EXPECT_EQ(DumpRunRows(DbPath(env)), rows_before);
    EXPECT_EQ(S(env.RalphJson({"show", "done"}, project).at("status")), "completed");
}

// Without a usable opencode the server ends `fatal`: attach says so and how to recover, and no run
// is marked anything (the old tool marked a run `failed` when its server did not answer).
TEST(FunctionalAttach, AFatalServerIsAClearErrorAndChangesNoRun)
{
    TestEnv env;
    env.WriteConfig("[server]\nopencode = /bin/false\nstart_limit_burst = 1\n");
    env.StartDaemon();
    std::string task = env.dir + "/proj/tasks/t";
    WriteFile(task + "/prompt.md", "TEXTONLY\n");
    auto r = env.Ralph({"--json", "run", task}, env.dir + "/proj");
    auto runs = json::parse(env.Ralph({"--json", "status", "--all"}).out).at("runs").as_array();
    ASSERT_EQ(runs.size(), 1u) << r.out << r.err;
    int64_t id = runs[0].at("id").as_int64();
    ASSERT_TRUE(WaitFor(
        [&] { return S(env.Call("run.get", json::object{{"run", id}})["result"].at("status")) != "running"; },
        std::chrono::seconds(30)));
    const std::string rows_before = DumpRunRows(env.state_dir + "/ralph.db");
    ASSERT_EQ(S(json::parse(env.Ralph({"--json", "server", "status"}).out).at("state")), "fatal");

    for (const std::vector<std::string>& args : {std::vector<std::string>{"attach", "--print"},
                                                 std::vector<std::string>{"attach", std::to_string(id), "--print"}}) {
        r = env.Ralph(args, env.dir + "/proj");
        EXPECT_EQ(r.exit_code, 1) << r.out;
        EXPECT_NE(r.err.find("cannot attach: the opencode server failed"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("run `ralph server start` to try again"), std::string::npos) << r.err;
    }
    r = env.Ralph({"--json", "attach", "--print"}, env.dir + "/proj");
    EXPECT_EQ(json::parse(r.out).at("error").at("name"), "SERVER_UNAVAILABLE") << r.out;
    EXPECT_EQ(DumpRunRows(env.state_dir + "/ralph.db"), rows_before);
}

}  // namespace
}  // namespace ralph::test
