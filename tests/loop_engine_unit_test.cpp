// LoopEngine built without a Daemon: a real store, a fake server (ServerAccess), fake opencode
// clients and a fake clock. One run goes through an iteration that ends with the promise.
#include "daemon/loop_engine.h"
#include "daemon/server_access.h"
#include "tests/fake_opencode_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace ralph {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

class FakeServer final : public ServerAccess {
public:
    FakeServer() { endpoint.port = 4242; }
    ServerState state() const override { return ServerState::Running; }
    std::optional<ServerEndpoint> Live() const override { return endpoint; }
    asio::awaitable<Result<ServerEndpoint>> Ensure() override { co_return endpoint; }
    asio::awaitable<Status> Stop() override { co_return Status::Ok(); }
    uint64_t stops_begun() const override { return 0; }
    const std::string& last_stop_why() const override { return why_; }
    void Subscribe(std::function<void(ServerState)> listener) override { listeners.push_back(std::move(listener)); }
    int64_t memory() const override { return 0; }
    int ForeignClients() const override { return 0; }
    asio::awaitable<Status> Restart(const std::string&) override { co_return Status::Ok(); }

    ServerEndpoint endpoint;
    std::vector<std::function<void(ServerState)>> listeners;

private:
    std::string why_;
};

/// An event of the /global/event stream for a session.
json::value SessionEvent(const std::string& type, const std::string& session)
{
    json::object props;
    props["sessionID"] = session;
    json::object payload;
    payload["type"] = type;
    payload["properties"] = std::move(props);
    json::object event;
    event["directory"] = "/proj";
    event["payload"] = std::move(payload);
    return event;
}

/// ralphd's two shutdown phases (a named coroutine: a lambda's captures would die before it ends).
asio::awaitable<void> ShutDown(LoopEngine& engine, bool& stopped)
{
    co_await engine.Shutdown();
    co_await engine.WaitStopped();
    stopped = true;
}

class UnitLoopEngine : public ::testing::Test {
protected:
    void SetUp() override
    {
        dir = fs::temp_directory_path() / ("ralph-loop-unit-" + std::to_string(getpid()));
        fs::remove_all(dir);
        fs::create_directories(dir / "proj" / "task");
        std::ofstream(dir / "proj" / "task" / "prompt.md") << "Do the next story.\n";
        task = Task{"task", (dir / "proj" / "task").string(), (dir / "proj").string()};
        store = std::make_unique<RunStore>((dir / "ralph.db").string());
    }
    void TearDown() override
    {
        store.reset();
        fs::remove_all(dir);
    }

    /// Runs the io_context until `done`; `limit` rounds of at most 100 ms each guard against a hang.
    bool RunUntil(const std::function<bool()>& done, int limit = 600)
    {
        io.restart();
        for (int i = 0; i < limit && !done(); ++i)
            if (io.run_one_for(100ms) == 0 && done()) break;
        return done();
    }

    fs::path dir;
    Task task;
    asio::io_context io;
    std::unique_ptr<RunStore> store;
    FakeServer server;
    FakeClock clock;
    RunSettings defaults;
};

TEST_F(UnitLoopEngine, RunsAnIterationOnFakesWithoutADaemon)
{
    FakeOpencodeClient opencode;
    opencode.session = std::string("ses_1");
    opencode.events = [this] {
        return std::make_unique<ScriptedEventStream>(io.get_executor(),
                                                     std::vector<json::value>{SessionEvent("session.idle", "ses_1")});
    };
    opencode.messages = json::parse(R"([
        {"info": {"role": "user", "id": "msg_u"}, "parts": [{"type": "text", "id": "prt_u", "text": "Do it"}]},
        {"info": {"role": "assistant", "id": "msg_a", "time": {"completed": 1}, "tokens": {"input": 100, "output": 20},
                  "cost": 0.5},
         "parts": [{"type": "text", "id": "prt_a", "text": "Done. <promise>COMPLETE</promise>"}]}])");
    std::vector<ServerEndpoint> asked_for;
    OpencodeClientFactory clients = [&](const ServerEndpoint& ep) {
        asked_for.push_back(ep);
        return std::make_unique<FakeOpencodeClient>(opencode);
    };

    PosixLauncher launcher(io);
    GitRunner no_git(launcher, "");  // the project is no git work tree anyway
    auto engine = std::make_unique<LoopEngine>(io, *store, server, defaults, clock, clients, Millis(0), no_git);
    EXPECT_EQ(server.listeners.size(), 1u);  // it follows the server's state

    RunSettings settings;
    settings.max_iterations = 3;
    std::string error;
    Result<RunRow> started = engine->Start(task, settings, &error);
    ASSERT_TRUE(started.ok()) << started.status().message();
    const RunRow run = *started;
    EXPECT_EQ(error, "");
    ASSERT_TRUE(RunUntil([&] {
        auto now = store->GetRun(run.id);
        return now && now->status != RunStatus::kRunning;
    }));

    std::optional<RunRow> after = store->GetRun(run.id);
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(after->status, RunStatus::kCompleted);
    EXPECT_EQ(after->reason, RunReason::kPromise);
    std::vector<IterationRow> its = store->Iterations(run.id);
    ASSERT_EQ(its.size(), 1u);
    EXPECT_EQ(its[0].session_id, "ses_1");
    EXPECT_EQ(its[0].outcome, OutcomeName::kComplete);
    EXPECT_EQ(its[0].port, 4242);
    EXPECT_EQ(its[0].tokens_in, 100);
    EXPECT_EQ(its[0].tokens_out, 20);
    const std::string project = task.project_root;
    EXPECT_EQ(*opencode.calls, (std::vector<std::string>{"CreateSession " + project, "Prompt ses_1 " + project,
                                                          "Messages ses_1 " + project}));
    ASSERT_FALSE(asked_for.empty());
    for (const ServerEndpoint& ep : asked_for) EXPECT_EQ(ep.port, 4242);

    // Shut down as ralphd does, then let every coroutine end before the engine goes.
    bool stopped = false;
    asio::co_spawn(io, ShutDown(*engine, stopped), asio::detached);
    ASSERT_TRUE(RunUntil([&] { return stopped; }));
    // As ralphd's Run() does: the cancelled operations (the hub's event stream) complete while the
    // engine still exists, and only then does it go.
    io.restart();
    io.poll();
    engine.reset();
    io.restart();
    io.poll();
}

}  // namespace
}  // namespace ralph
