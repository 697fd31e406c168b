// docs/reference.md is the page users and scripts rely on: every command, configuration key, JSON
// field and error code the code has must be named there.
#include "client/commands.h"
#include "common/errors.h"
#include "daemon/config.h"
#include "daemon/run_view.h"
#include "daemon/store.h"
#include "tests/harness.h"

#include <gtest/gtest.h>

using namespace ralph;
using namespace ralph::test;

namespace {

std::string Reference() { return ReadFile(std::string(RALPH_SOURCE_DIR) + "/docs/reference.md"); }

bool Names(const std::string& page, const std::string& name) { return page.find("`" + name) != std::string::npos; }

}  // namespace

TEST(FunctionalReference, NamesEveryCommand)
{
    std::string page = Reference();
    ASSERT_FALSE(page.empty());
    for (const Command* c : AllCommands())
        EXPECT_TRUE(Names(page, std::string("ralph ") + c->name)) << "docs/reference.md does not name `ralph " << c->name << "`";
}

TEST(FunctionalReference, NamesEveryConfigKeyWithItsDefault)
{
    std::string page = Reference();
    ASSERT_FALSE(page.empty());
    for (const std::string& key : ConfigKeyNames())
        EXPECT_TRUE(page.find("| `" + key + "` |") != std::string::npos) << "docs/reference.md has no row for " << key;
}

TEST(FunctionalReference, NamesEveryRunAndIterationField)
{
    std::string page = Reference();
    ASSERT_FALSE(page.empty());
    for (const auto& field : RunJson(RunRow{}, std::nullopt))
        EXPECT_TRUE(Names(page, std::string(field.key()) + "`")) << "run field " << field.key() << " is not documented";
    for (const auto& field : IterationJson(IterationRow{}))
        EXPECT_TRUE(Names(page, std::string(field.key()) + "`")) << "iteration field " << field.key() << " is not documented";
}

TEST(FunctionalReference, NamesEveryErrorCode)
{
    std::string page = Reference();
    ASSERT_FALSE(page.empty());
    for (int code : {kParseError, kInvalidRequest, kMethodNotFound, kInvalidParams, kInternalError, kNotFound,
                     kTaskNotFound, kAlreadyRunning, kInvalidState, kServerUnavailable, kWarmingUp}) {
        EXPECT_TRUE(page.find("| " + std::to_string(code) + " | `" + RpcCodeName(code) + "` |") != std::string::npos)
            << "error " << code << " is not documented";
    }
}
