// Load: 64 clients calling run.list and daemon.ping as fast as they can while 10 loops run through
// the real opencode and each is followed with `ralph logs -f`: no call fails and no followed event
// is dropped. The work is done by the load benchmark, bench/load.cpp (ralph-load), which also
// prints the latencies; run it by hand for longer: build/ralph-load --seconds 60.
#include "tests/harness.h"

#include <gtest/gtest.h>

namespace ralph::test {
namespace {

TEST(E2ELoad, SixtyFourClientsBesideTenFollowedLoopsWithoutAnErrorOrADroppedEvent)
{
    auto r = RunProgram({RALPH_LOAD_PATH, "--clients", "64", "--loops", "10", "--seconds", "10"},
                        {{"RALPH_OPENCODE", OpencodeBinary()}}, "", std::chrono::seconds(280));
    std::cout << r.out;
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("errors: 0"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(0 runs differ)"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace ralph::test
