// ralphd.conf, environment and command line combine in that order of strength, and a bad value
// names the key, the value and what is allowed.
#include "daemon/config.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

namespace ralph {
namespace {

using test::WriteFile;

class UnitConfig : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/ralph-config-XXXXXX";
        dir_ = mkdtemp(tmpl);
        for (const char* v : {"RALPH_SERVER_PORT", "RALPH_RUN_MODEL", "RALPH_OPENCODE", "RALPH_RUN_MAX_ITERATIONS"})
            unsetenv(v);
    }
    void TearDown() override
    {
        std::filesystem::remove_all(dir_);
        for (const char* v : {"RALPH_SERVER_PORT", "RALPH_RUN_MODEL", "RALPH_OPENCODE", "RALPH_RUN_MAX_ITERATIONS"})
            unsetenv(v);
    }
    std::string Path(const std::string& name) { return dir_ + "/" + name; }
    std::string ErrorOf(const std::string& conf, std::map<std::string, std::string> overrides = {})
    {
        WriteFile(Path("bad.conf"), conf);
        try {
            LoadConfig(Path("bad.conf"), overrides);
        } catch (const ConfigError& e) {
            return e.what();
        }
        return "";
    }
    std::string dir_;
};

TEST_F(UnitConfig, DefaultsWithoutAFile)
{
    Config c = LoadConfig(Path("missing.conf"), {});
    EXPECT_EQ(c.server.mode, "managed");
    EXPECT_EQ(c.server.port, 14096);
    EXPECT_EQ(c.server.port_min, 14096);
    EXPECT_EQ(c.server.port_max, 14196);
    EXPECT_EQ(c.server.health_failures, 3);
    EXPECT_EQ(c.server.idle_stop.count(), 0);
    EXPECT_EQ(c.run.max_iterations, 10);
    EXPECT_EQ(c.run.iteration_timeout, std::chrono::minutes(30));
    EXPECT_EQ(c.run.max_consecutive_failures, 3);
    EXPECT_EQ(c.run.completion_promise, "COMPLETE");
}

TEST_F(UnitConfig, FileThenEnvironmentThenCommandLine)
{
    WriteFile(Path("ralphd.conf"), "[server]\nport = 15000\nport_range = 15000-15010\nhealth_interval = 2s\n"
                                   "[run]\nmax_iterations = 7\nmodel = fake/fake-model\niteration_timeout = 1h30m\n");
    Config c = LoadConfig(Path("ralphd.conf"), {});
    EXPECT_EQ(c.server.port, 15000);
    EXPECT_EQ(c.server.port_max, 15010);
    EXPECT_EQ(c.server.health_interval, std::chrono::seconds(2));
    EXPECT_EQ(c.run.max_iterations, 7);
    EXPECT_EQ(c.run.model, "fake/fake-model");
    EXPECT_EQ(c.run.iteration_timeout, std::chrono::minutes(90));

    setenv("RALPH_SERVER_PORT", "15001", 1);
    setenv("RALPH_OPENCODE", "/opt/opencode", 1);
    c = LoadConfig(Path("ralphd.conf"), {});
    EXPECT_EQ(c.server.port, 15001);
    EXPECT_EQ(c.server.opencode, "/opt/opencode");
    EXPECT_EQ(c.run.max_iterations, 7);

    c = LoadConfig(Path("ralphd.conf"), {{"server.port", "15002"}, {"run.max_iterations", "3"}});
    EXPECT_EQ(c.server.port, 15002);
    EXPECT_EQ(c.run.max_iterations, 3);
}

TEST_F(UnitConfig, BadValuesNameKeyValueAndWhatIsAllowed)
{
    std::string e = ErrorOf("[server]\nport = 99999\n");
    EXPECT_NE(e.find("server.port"), std::string::npos) << e;
    EXPECT_NE(e.find("99999"), std::string::npos) << e;
    EXPECT_NE(e.find("1 to 65535"), std::string::npos) << e;

    e = ErrorOf("[run]\niteration_timeout = soon\n");
    EXPECT_NE(e.find("run.iteration_timeout"), std::string::npos) << e;
    EXPECT_NE(e.find("'soon'"), std::string::npos) << e;
    EXPECT_NE(e.find("30s"), std::string::npos) << e;

    e = ErrorOf("[server]\nmode = sometimes\n");
    EXPECT_NE(e.find("managed or external"), std::string::npos) << e;

    e = ErrorOf("[server]\nport_range = 200-100\n");
    EXPECT_NE(e.find("server.port_range"), std::string::npos) << e;

    e = ErrorOf("[run]\nmodel = justamodel\n");
    EXPECT_NE(e.find("provider/model"), std::string::npos) << e;

    e = ErrorOf("[server]\nprot = 1\n");
    EXPECT_NE(e.find("unknown key 'server.prot'"), std::string::npos) << e;

    e = ErrorOf("", {{"server.nope", "1"}});
    EXPECT_NE(e.find("server.nope"), std::string::npos) << e;

    e = ErrorOf("[server]\nmode = external\n");
    EXPECT_NE(e.find("server.url"), std::string::npos) << e;

    setenv("RALPH_RUN_MAX_ITERATIONS", "zero", 1);
    e = ErrorOf("");
    EXPECT_NE(e.find("run.max_iterations"), std::string::npos) << e;
}

TEST_F(UnitConfig, TaskIniOverridesRunSection)
{
    RunSettings base;
    base.model = "a/b";
    WriteFile(Path("ralph.ini"), "[run]\nmax_iterations = 4\ncompletion_promise = DONE\n");
    RunSettings r = ApplyTaskIni(base, Path("ralph.ini"));
    EXPECT_EQ(r.max_iterations, 4);
    EXPECT_EQ(r.completion_promise, "DONE");
    EXPECT_EQ(r.model, "a/b");

    WriteFile(Path("bad.ini"), "[server]\nport = 1\n");
    EXPECT_THROW(ApplyTaskIni(base, Path("bad.ini")), ConfigError);
}

TEST_F(UnitConfig, PercentSignsAreKeptAndABrokenLineWithAPlaceholderIsAnErrorNotAHang)
{
    // Boost.Program_options used to loop forever building the message for this line (fuzz_task).
    WriteFile(Path("ralph.ini"), "[run]\nx%invalid_line%y\n");
    try {
        ApplyTaskIni(RunSettings{}, Path("ralph.ini"));
        ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("x%invalid_line%y"), std::string::npos) << e.what();
    }
    WriteFile(Path("ralph.ini"), "[run]\ncompletion_promise = 100% DONE\nagent = %option%\n");
    RunSettings r = ApplyTaskIni(RunSettings{}, Path("ralph.ini"));
    EXPECT_EQ(r.completion_promise, "100% DONE");
    EXPECT_EQ(r.agent, "%option%");
}

TEST_F(UnitConfig, EveryKeyIsDocumentedInHelp)
{
    std::string help = ConfigKeysHelp();
    for (const std::string& key : ConfigKeyNames()) {
        EXPECT_NE(help.find(key.substr(key.find('.') + 1) + " ="), std::string::npos) << key;
    }
}

TEST(UnitDuration, ParsesAndFormats)
{
    EXPECT_EQ(ParseDuration("90"), Millis(90000));
    EXPECT_EQ(ParseDuration("30s"), Millis(30000));
    EXPECT_EQ(ParseDuration("5m"), Millis(300000));
    EXPECT_EQ(ParseDuration("1h30m"), Millis(5400000));
    EXPECT_EQ(ParseDuration("250ms"), Millis(250));
    EXPECT_EQ(ParseDuration("0"), Millis(0));
    EXPECT_FALSE(ParseDuration(""));
    EXPECT_FALSE(ParseDuration("-5s"));
    EXPECT_FALSE(ParseDuration("5 s"));
    EXPECT_FALSE(ParseDuration("5x"));
    EXPECT_FALSE(ParseDuration("1h5"));
    EXPECT_EQ(FormatDuration(Millis(5400000)), "1h30m");
    EXPECT_EQ(FormatDuration(Millis(1500)), "1500ms");
    EXPECT_EQ(FormatDuration(Millis(0)), "0s");
}

}  // namespace
}  // namespace ralph
