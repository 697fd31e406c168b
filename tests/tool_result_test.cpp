// What a tool call did, from opencode's ToolPart (shapes as opencode 1.18.33 sends them in
// message.part.updated and /session/{id}/message), and how `ralph logs` prints it.
#include "client/format.h"
#include "daemon/tool_result.h"

#include <gtest/gtest.h>

namespace ralph {
namespace {

namespace json = boost::json;

json::object Data(const char* part, const std::string& root = "/srv/proj")
{
    return ToolEventData(json::parse(part), root);
}

TEST(UnitToolResult, BashRecordsExitStatusAndOutput)
{
    json::object d = Data(R"({"id":"prt_1","type":"tool","tool":"bash","callID":"call_1","state":{"status":"completed",
        "input":{"command":"echo boom-output; exit 3","description":"scripted"},"output":"boom-output\n",
        "title":"echo boom-output; exit 3","metadata":{"output":"boom-output\n","exit":3,"description":"scripted"},
        "time":{"start":1,"end":2}}})");
    EXPECT_EQ(d.at("tool"), "bash");
    EXPECT_EQ(d.at("title"), "echo boom-output; exit 3");
    EXPECT_EQ(d.at("status"), "completed");
    EXPECT_EQ(d.at("exit"), 3);
    EXPECT_EQ(d.at("output"), "boom-output\n");
    EXPECT_FALSE(d.contains("output_truncated"));
    EXPECT_FALSE(d.contains("files"));
}

TEST(UnitToolResult, BashKilledHasANullExitAndKeepsTheEndOfALongOutput)
{
    std::string output(kToolOutputKeep + 100, 'x');
    output += "\nlast line\n\n<shell_metadata>\nUser aborted the command\n</shell_metadata>";
    json::object part = {{"type", "tool"}, {"tool", "bash"},
                         {"state", {{"status", "completed"}, {"title", "sleep 100"}, {"output", output}, {"metadata", json::object{}}}}};
    json::object d = ToolEventData(part, "/srv/proj");
    ASSERT_TRUE(d.contains("exit"));
    EXPECT_TRUE(d.at("exit").is_null());
    EXPECT_EQ(d.at("output").as_string().size(), kToolOutputKeep);
    EXPECT_TRUE(d.at("output").as_string().ends_with("x\nlast line\n"));
    EXPECT_EQ(d.at("output_truncated"), true);
    EXPECT_EQ(ToolOutcome(d, false, "").substr(0, 36), " (killed: User aborted the command)\n");
}

TEST(UnitToolResult, OpencodesShellNotesLeaveTheOutput)
{
    // As opencode 1.18.33 records a bash call aborted by ralph stop --now.
    json::object d = Data(R"({"type":"tool","tool":"bash","state":{"status":"completed","input":{"command":"sleep 60"},
        "output":"before-sleep\n\n\n<shell_metadata>\nUser aborted the command\n</shell_metadata>","title":"sleep 60",
        "metadata":{"description":"scripted"}}})");
    EXPECT_EQ(d.at("output"), "before-sleep\n");
    EXPECT_EQ(d.at("note"), "User aborted the command");
    EXPECT_TRUE(d.at("exit").is_null());
    EXPECT_EQ(ToolOutcome(d, false, ""), " (killed: User aborted the command)\n| before-sleep");
}

TEST(UnitToolResult, EditsRecordFilesWithLinesAddedAndRemoved)
{
    json::object edit = Data(R"({"type":"tool","tool":"edit","state":{"status":"completed","input":{"filePath":"/srv/proj/src/a.py"},
        "output":"Edit applied successfully.","title":"src/a.py","metadata":{"diagnostics":{},"diff":"...",
        "filediff":{"file":"/srv/proj/src/a.py","before":"","after":"","additions":4,"deletions":2}}}})");
    ASSERT_TRUE(edit.contains("files"));
    EXPECT_EQ(json::serialize(edit.at("files")), R"([{"file":"src/a.py","additions":4,"deletions":2}])");
    EXPECT_EQ(ToolOutcome(edit, false, ""), " (+4 -2)");

    json::object patch = Data(R"({"type":"tool","tool":"apply_patch","state":{"status":"completed","input":{},"output":"",
        "title":"2 files","metadata":{"files":[{"filePath":"/srv/proj/a.txt","additions":1,"deletions":0,"type":"add"},
        {"filePath":"/elsewhere/b.txt","additions":0,"deletions":5,"type":"delete"}]}}})");
    EXPECT_EQ(ToolOutcome(patch, false, ""), " (a.txt +1 -0, /elsewhere/b.txt +0 -5)");

    // As recorded in opencode-server-facts.md: write reports no diff, so its content is counted.
    json::object write = Data(R"({"type":"tool","tool":"write","callID":"call_37_32935","state":{"status":"completed",
        "input":{"filePath":"/srv/proj/notes.txt","content":"one\ntwo\nthree"},"output":"Wrote file successfully.",
        "metadata":{"diagnostics":{},"filepath":"/srv/proj/notes.txt","exists":true},"title":"notes.txt","time":{"start":1,"end":2}}})");
    EXPECT_EQ(ToolOutcome(write, false, ""), " (+3 -0)");
    EXPECT_EQ(write.at("files").at(0).at("replaced"), true);
}

TEST(UnitToolResult, FailedToolKeepsItsErrorAndOtherToolsAddNothing)
{
    json::object failed = Data(R"({"type":"tool","tool":"edit","state":{"status":"error","input":{},"error":"oldString not found",
        "time":{"start":1,"end":2}}})");
    EXPECT_EQ(failed.at("error"), "oldString not found");
    EXPECT_FALSE(failed.contains("files"));
    json::object read = Data(R"({"type":"tool","tool":"read","state":{"status":"completed","input":{},"output":"secret",
        "title":"a.txt","metadata":{}}})");
    EXPECT_FALSE(read.contains("output"));  // only bash output is worth a log line
    EXPECT_EQ(ToolOutcome(read, false, ""), "");
    EXPECT_TRUE(Data("[]").at("tool").as_string().empty());  // garbage in, an empty record out
}

TEST(UnitToolResult, LogsShowTheLastLinesUnlessVerbose)
{
    json::object d = {{"tool", "bash"}, {"exit", 1}, {"output", "1\n2\n3\n4\n5\n6\n7\n\n"}};
    EXPECT_EQ(ToolOutcome(d, false, ".."),
              " (exit 1)\n..| (2 earlier lines; --verbose shows them)\n..| 3\n..| 4\n..| 5\n..| 6\n..| 7");
    EXPECT_EQ(ToolOutcome(d, true, ""), " (exit 1)\n| 1\n| 2\n| 3\n| 4\n| 5\n| 6\n| 7");
    json::object event = {{"id", 1}, {"at", 0}, {"iteration", 2}, {"kind", "tool"},
                          {"data", {{"tool", "bash"}, {"title", "make test"}, {"status", "completed"}, {"exit", 0}, {"output", "ok\n"}}}};
    std::string line = EventLine(event);
    EXPECT_NE(line.find("  tool bash: make test (exit 0)\n"), std::string::npos) << line;
    EXPECT_TRUE(line.ends_with("| ok")) << line;
}

}  // namespace
}  // namespace ralph
