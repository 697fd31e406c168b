#include "bench/world.h"

#include "bench/http_sync.h"

#include <arpa/inet.h>
#include <csignal>
#include <filesystem>
#include <netinet/in.h>
#include <stdexcept>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace ralph::bench {

namespace fs = std::filesystem;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

World::World(std::string root, Binaries bin) : root_(std::move(root)), bin_(std::move(bin))
{
    fs::remove_all(root_);
    fs::create_directories(root_ + "/home");
    env_ = {
        {"HOME", root_ + "/home"},
        {"XDG_CONFIG_HOME", root_ + "/config"},
        {"XDG_DATA_HOME", root_ + "/data"},
        {"XDG_STATE_HOME", root_ + "/xdgstate"},
        {"XDG_CACHE_HOME", root_ + "/cache"},
        {"XDG_RUNTIME_DIR", ""},
        {"RALPH_SOCKET", ""},
        {"RALPH_STATE_DIR", ""},
        {"RALPH_CONFIG", ""},
        {"JOURNAL_STREAM", ""},
        {"NOTIFY_SOCKET", ""},
        {"RALPH_OPENCODE", bin_.opencode},
        {"RALPHD", bin_.ralphd},
        {"OPENCODE_DISABLE_AUTOUPDATE", "1"},
        {"OPENCODE_DISABLE_MODELS_FETCH", "1"},
        {"OPENCODE_DISABLE_LSP_DOWNLOAD", "1"},
        // Offline: nothing is fetched while measuring.
        {"npm_config_registry", "http://127.0.0.1:9/"},
    };
    next_port_ = 15000 + static_cast<int>(getpid() % 40) * 100;

    std::string out = root_ + "/fake-model.out";
    model_pid_ = Spawn({bin_.fake_model, "--port", "0", "--log", root_ + "/fake-model.log"}, env_, root_, out,
                       root_ + "/fake-model.err");
    auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while (SteadyClock::now() < deadline) {
        std::string text = ReadFile(out);
        auto at = text.find("listening on ");
        if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
            model_url_ = text.substr(at + 13, text.find('\n', at) - at - 13);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (model_url_.empty()) throw std::runtime_error("ralph-fake-model did not start: " + ReadFile(root_ + "/fake-model.err"));
    int code = 0;
    Capture({"/bin/bash", bin_.source_dir + "/scripts/fake-model-config", model_url_, root_ + "/config"}, env_, root_,
            &code);
    if (code != 0) throw std::runtime_error("scripts/fake-model-config failed");
}

World::~World() { Terminate(model_pid_, std::chrono::seconds(5)); }

std::string World::MakeProject(const std::string& name)
{
    std::string project = root_ + "/" + name;
    fs::create_directories(project);
    WriteFile(project + "/README.md", "# " + name + "\n");
    for (std::vector<std::string> args : {std::vector<std::string>{"init", "-q"}, {"add", "-A"}, {"commit", "-qm", "init"}}) {
        std::vector<std::string> argv = {"git", "-C", project, "-c", "user.name=bench", "-c", "user.email=bench@localhost"};
        argv.insert(argv.end(), args.begin(), args.end());
        int code = 0;
        Capture(argv, env_, "", &code);
        if (code != 0) throw std::runtime_error("git " + args[0] + " failed in " + project);
    }
    return project;
}

void World::AddTask(const std::string& project, const std::string& task, const std::string& prompt)
{
    fs::create_directories(project + "/tasks/" + task);
    WriteFile(project + "/tasks/" + task + "/prompt.md", prompt);
}

int World::FreePort()
{
    for (; next_port_ < 65000; ++next_port_) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<uint16_t>(next_port_));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        close(fd);
        if (free) return next_port_++;
    }
    throw std::runtime_error("no free port");
}

// ---------------------------------------------------------------------------------------------

Ralphd::Ralphd(World& world, const std::string& name, const std::string& config, const std::string& bin_dir)
    : world_(world)
{
    ralph_ = bin_dir.empty() ? world.bin().ralph : bin_dir + "/ralph";
    std::string ralphd = bin_dir.empty() ? world.bin().ralphd : bin_dir + "/ralphd";
    dir_ = world.root() + "/" + name;
    socket_ = dir_ + "/ralphd.sock";
    state_dir_ = dir_ + "/state";
    log_ = dir_ + "/ralphd.log";
    fs::create_directories(state_dir_);
    WriteFile(dir_ + "/ralphd.conf", config);
    env_ = world.env();
    env_["RALPH_SOCKET"] = socket_;
    env_["RALPH_STATE_DIR"] = state_dir_;
    env_["RALPH_CONFIG"] = dir_ + "/ralphd.conf";
    env_["RALPH_NO_AUTOSTART"] = "1";
    env_["RALPHD"] = ralphd;
    pid_ = Spawn({ralphd}, env_, dir_, log_, log_);
    auto deadline = SteadyClock::now() + std::chrono::seconds(15);
    while (SteadyClock::now() < deadline) {
        if (!Alive(pid_)) break;
        try {
            RpcClient c(socket_);
            if (c.Call("daemon.ping").contains("result")) return;
        } catch (const ConnectionError&) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::string log = ReadFile(log_);
    Stop();
    throw std::runtime_error("ralphd " + name + " did not start:\n" + log);
}

Ralphd::~Ralphd() { Stop(); }

json::value Ralphd::Call(const std::string& method, json::value params)
{
    RpcClient c(socket_);
    json::object reply = c.Call(method, std::move(params));
    if (auto* e = reply.if_contains("error")) throw std::runtime_error(method + ": " + json::serialize(*e));
    return reply["result"];
}

Finished Ralphd::Ralph(const std::vector<std::string>& args, const std::string& cwd, const std::string& out)
{
    std::vector<std::string> argv{ralph_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunTimed(argv, env_, cwd, out);
}

json::value Ralphd::RalphJson(const std::vector<std::string>& args, const std::string& cwd)
{
    std::vector<std::string> argv{ralph_, "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    int code = 0;
    std::string out = Capture(argv, env_, cwd, &code);
    boost::system::error_code ec;
    json::value v = json::parse(out, ec);
    if (ec) throw std::runtime_error("ralph --json " + args[0] + " printed no JSON (exit " + std::to_string(code) + ")");
    return v;
}

int Ralphd::StartServer()
{
    json::value st = Call("server.start");
    if (!st.at("healthy").as_bool()) throw std::runtime_error("the managed server is not healthy: " + json::serialize(st));
    return static_cast<int>(st.at("pid").as_int64());
}

int Ralphd::ServerPid()
{
    json::value st = Call("server.status");
    return st.at("pid").is_int64() ? static_cast<int>(st.at("pid").as_int64()) : 0;
}

void Ralphd::Stop()
{
    if (pid_ <= 0) return;
    try {
        RpcClient c(socket_);
        c.Call("daemon.shutdown");
    } catch (const std::exception&) {
        kill(pid_, SIGTERM);
    }
    // ralphd stops its managed server on the way out (dispose, SIGTERM, SIGKILL after 10 s).
    Wait(pid_, SteadyClock::now(), std::chrono::seconds(40));
    pid_ = -1;
}

// ---------------------------------------------------------------------------------------------

OpencodeServer::OpencodeServer(World& world, const std::string& name, const std::string& password)
    : password_(password)
{
    std::string dir = world.root() + "/" + name;
    fs::create_directories(dir);
    port_ = world.FreePort();
    Env env = world.env();
    env["OPENCODE_SERVER_PASSWORD"] = password;
    auto started = SteadyClock::now();
    pid_ = Spawn({world.bin().opencode, "serve", "--hostname", "127.0.0.1", "--port", std::to_string(port_)}, env, dir,
                 dir + "/opencode.out", dir + "/opencode.out");
    ServerEndpoint ep;
    ep.port = port_;
    ep.password = password;
    auto deadline = started + std::chrono::seconds(60);
    while (SteadyClock::now() < deadline && Alive(pid_)) {
        if (ReadFile(dir + "/opencode.out").find("listening on") != std::string::npos) {
            HttpResult r = HttpSync(ep, boost::beast::http::verb::get, "/global/health", "", std::chrono::seconds(2));
            if (r.ok()) {
                startup_s_ = std::chrono::duration<double>(SteadyClock::now() - started).count();
                return;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::string out = ReadFile(dir + "/opencode.out");
    Stop();
    throw std::runtime_error("opencode serve did not become healthy:\n" + out);
}

OpencodeServer::~OpencodeServer() { Stop(); }

void OpencodeServer::Stop()
{
    if (pid_ <= 0) return;
    ServerEndpoint ep;
    ep.port = port_;
    ep.password = password_;
    HttpSync(ep, boost::beast::http::verb::post, "/global/dispose", "", std::chrono::seconds(3));
    Terminate(pid_, std::chrono::seconds(10));
    pid_ = -1;
}

}  // namespace ralph::bench
