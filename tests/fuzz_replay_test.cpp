// Replays every input kept for the fuzz targets through them: the corpus (tests/fuzz/corpus/<target>/)
// and the inputs that once crashed one (tests/fuzz/regressions/<target>/), so what the fuzzers
// found stays fixed in every build, sanitized or not, without clang.
#include "tests/fuzz/fuzz_targets.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace ralph::test {
namespace {

namespace fs = std::filesystem;

/// Feeds each file under tests/fuzz/<kind>/<target>/ to the target; returns how many.
int Replay(const std::string& kind, const std::string& target, int (*fn)(const uint8_t*, std::size_t))
{
    fs::path dir = fs::path(RALPH_SOURCE_DIR) / "tests/fuzz" / kind / target;
    if (!fs::is_directory(dir)) return 0;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
        SCOPED_TRACE(f.string());
        std::ifstream in(f, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        std::string bytes = ss.str();
        EXPECT_EQ(fn(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0);
    }
    return static_cast<int>(files.size());
}

TEST(FunctionalFuzzReplay, RequestCorpusAndRegressions)
{
    EXPECT_GT(Replay("corpus", "request", fuzz::Request), 0) << "the request corpus is empty";
    Replay("regressions", "request", fuzz::Request);
}

TEST(UnitFuzzReplay, EventsCorpusAndRegressions)
{
    EXPECT_GT(Replay("corpus", "events", fuzz::Events), 0) << "the events corpus is empty";
    Replay("regressions", "events", fuzz::Events);
}

TEST(UnitFuzzReplay, TaskCorpusAndRegressions)
{
    EXPECT_GT(Replay("corpus", "task", fuzz::Task), 0) << "the task corpus is empty";
    Replay("regressions", "task", fuzz::Task);
}

}  // namespace
}  // namespace ralph::test
