// Lines are reassembled across any split of the byte stream, and an over-long line is refused.
#include "common/line_framer.h"

#include <gtest/gtest.h>

namespace ralph {
namespace {

TEST(UnitLineFramer, SplitsAndJoinsAcrossReads)
{
    LineFramer f(100);
    EXPECT_TRUE(f.Append("{\"a\""));
    EXPECT_FALSE(f.Next());
    EXPECT_TRUE(f.Append(":1}\n{\"b\":2}\n{\"c\""));
    EXPECT_EQ(*f.Next(), "{\"a\":1}");
    EXPECT_EQ(*f.Next(), "{\"b\":2}");
    EXPECT_FALSE(f.Next());
    EXPECT_TRUE(f.Append(":3}\n"));
    EXPECT_EQ(*f.Next(), "{\"c\":3}");
    EXPECT_FALSE(f.Next());
    EXPECT_EQ(f.pending(), 0u);
}

TEST(UnitLineFramer, ByteByByte)
{
    LineFramer f(100);
    std::string input = "one\ntwo\n\nthree\n";
    std::vector<std::string> lines;
    for (char c : input) {
        ASSERT_TRUE(f.Append(std::string_view(&c, 1)));
        while (auto l = f.Next()) lines.push_back(*l);
    }
    EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "", "three"}));
}

TEST(UnitLineFramer, LimitIsExact)
{
    LineFramer ok(5);
    EXPECT_TRUE(ok.Append("12345\n"));
    EXPECT_EQ(*ok.Next(), "12345");
    LineFramer too_long(5);
    EXPECT_FALSE(too_long.Append("123456\n"));
    EXPECT_TRUE(too_long.overflowed());
    EXPECT_FALSE(too_long.Next());
}

TEST(UnitLineFramer, UnfinishedLineOverLimitIsRefusedEarly)
{
    LineFramer f(10);
    EXPECT_TRUE(f.Append("12345"));
    EXPECT_FALSE(f.Append("678901"));  // no newline yet, but already too long
    EXPECT_TRUE(f.overflowed());
}

TEST(UnitLineFramer, LongStreamOfShortLines)
{
    LineFramer f(16);
    std::size_t count = 0;
    for (int i = 0; i < 100000; ++i) {
        ASSERT_TRUE(f.Append("{\"i\":" + std::to_string(i % 1000) + "}\n"));
        while (f.Next()) ++count;
    }
    EXPECT_EQ(count, 100000u);
}

}  // namespace
}  // namespace ralph
