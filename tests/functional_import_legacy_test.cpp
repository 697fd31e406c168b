// `ralph import-legacy` through the real daemon and client: the earlier Python ralph's registry
// (sessions.db) imported once, reported, and shown like any other run.
#include "tests/harness.h"
#include "tests/legacy_session_schemas.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

namespace ralph {
namespace {

namespace fs = std::filesystem;
using test::kLegacyEras;
using test::kLegacySchema;
using test::ReadFile;

// Through the real daemon and client: `ralph import-legacy PATH` reports what it did, `--json`
// gives the counts, and the imported runs are listed like any other, with no live server shown.
TEST(FunctionalImportLegacy, ImportsThroughTheCommandLineOnce)
{
    test::TestEnv env;
    std::string legacy = env.dir + "/old/sessions.db";
    fs::create_directories(env.dir + "/old");
    {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open(legacy.c_str(), &db), SQLITE_OK);
        std::string sql = std::string(kLegacySchema) +
                          "INSERT INTO sessions (task_name, task_dir, pid, tmux_session, agent, status, started_at, "
                          "updated_at, iteration, max_iterations, session_type, server_port, opencode_session_id) "
                          "VALUES ('fix-tests', '/gone/proj/tasks/fix-tests', 1, 'ralph-fix-tests', 'opencode', "
                          "'checkpointed', '2025-01-15T10:30:45', '2025-01-15T11:30:45', 3, 10, 'opencode-server', "
                          "14096, 'ses_legacy');";
        ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(db);
    }
    std::string bytes = ReadFile(legacy);
    env.StartDaemon();
    auto r = env.Ralph({"import-legacy", legacy});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("fix-tests, stopped (user)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("imported 1 run(s) from " + legacy + "; 0 imported before, 0 skipped"), std::string::npos)
        << r.out;
    // A relative path is the client's: resolved against its working directory.
    r = env.Ralph({"--json", "import-legacy", "sessions.db"}, env.dir + "/old");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto again = boost::json::parse(r.out);
    EXPECT_EQ(again.at("imported"), 0);
    EXPECT_EQ(again.at("already_imported"), 1);
    EXPECT_EQ(ReadFile(legacy), bytes);

    auto status = boost::json::parse(env.Ralph({"--json", "status", "--all"}).out);
    ASSERT_EQ(status.at("runs").as_array().size(), 1u);
    const auto& run = status.at("runs").as_array()[0];
    EXPECT_EQ(run.at("status"), "stopped");
    EXPECT_EQ(run.at("session_id"), "ses_legacy");
    EXPECT_EQ(run.at("last_port"), 14096);
    EXPECT_TRUE(run.at("server_url").is_null());

    // The default path is the earlier ralph's, under HOME; missing, it says so and how to give one.
    r = env.Ralph({"import-legacy"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("no database of the earlier ralph at " + env.home + "/.local/share/ralph/sessions.db"),
              std::string::npos)
        << r.err;
    r = env.Ralph({"--json", "import-legacy", env.dir + "/old"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(boost::json::parse(r.out).at("error").at("name"), "INVALID_PARAMS") << r.out;
}

// The oldest schema (11 columns, a claude loop in tmux) through the real daemon and client: it is
// imported, and `ralph show` tells it apart from an opencode run by what the earlier ralph recorded.
TEST(FunctionalImportLegacy, AnElevenColumnTmuxLoopIsImportedAndShownAsItRan)
{
    test::TestEnv env;
    std::string legacy = env.dir + "/old/sessions.db";
    fs::create_directories(env.dir + "/old");
    {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open(legacy.c_str(), &db), SQLITE_OK);
        std::string sql = std::string(kLegacyEras[0].create) +
                          "INSERT OR REPLACE INTO sessions (task_name, task_dir, pid, tmux_session, agent, status, "
                          "started_at, updated_at, iteration, current_story, max_iterations) VALUES ('login', "
                          "'/gone/proj/tasks/login', 1, 'ralph-login', 'claude', 'completed', "
                          "'2026-01-23T10:00:00.5', '2026-01-23T11:00:00.5', 4, 'US-002: Login form', 50);";
        ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(db);
    }
    env.StartDaemon();
    auto r = env.Ralph({"import-legacy", legacy});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("run 1: login, completed"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("imported 1 run(s)"), std::string::npos) << r.out;

    r = env.Ralph({"show", "1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("legacy:     agent claude, ran in tmux"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("story:      US-002: Login form"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("workspace:  -"), std::string::npos) << r.out;

    r = env.Ralph({"--json", "show", "1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto run = boost::json::parse(r.out);
    ASSERT_TRUE(run.at("legacy").is_object()) << r.out;
    EXPECT_EQ(run.at("legacy").at("agent"), "claude");
    EXPECT_EQ(run.at("legacy").at("session_type"), "tmux");
    EXPECT_EQ(run.at("legacy").at("current_story"), "US-002: Login form");
    EXPECT_TRUE(run.at("legacy").at("workspace_dir").is_null());
    EXPECT_TRUE(run.at("session_id").is_null());
    EXPECT_TRUE(run.at("agent").is_null());  // ralph's own field (an opencode agent) is not the legacy CLI
}

}  // namespace
}  // namespace ralph
