// Fuzz target: the files a user writes into a task (and ralphd.conf), and task names. The first
// byte picks the file (0xff: a task directory named by the rest); the rest is its content.
#include "tests/fuzz/fuzz_targets.h"

#include "common/jsonrpc.h"
#include "common/text.h"
#include "daemon/config.h"
#include "daemon/iteration.h"
#include "daemon/task.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace ralph::fuzz {

namespace {

namespace fs = std::filesystem;

struct World {
    World()
    {
        dir = ScratchDir();
        fs::create_directories(dir + "/proj/.git");
        fs::create_directories(dir + "/proj/tasks/t");
        task = ralph::Task{"t", dir + "/proj/tasks/t", dir + "/proj"};
    }
    std::string dir;
    ralph::Task task;
};

World& TheWorld()
{
    static World* world = new World;
    return *world;
}

void Write(const std::string& path, std::string_view text)
{
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(text.data(), static_cast<std::streamsize>(text.size()));
}

[[noreturn]] void Fail(const char* what)
{
    std::fprintf(stderr, "fuzz_task: %s\n", what);
    std::abort();
}

void CheckRunSettings(const RunSettings& r)
{
    if (r.max_iterations < 1 || r.max_iterations > 1000000) Fail("max_iterations out of range");
    if (r.max_consecutive_failures < 1) Fail("max_consecutive_failures below 1");
    if (r.iteration_timeout.count() <= 0) Fail("iteration_timeout not positive");
    if (r.completion_promise.empty() || r.completion_promise.find_first_of("<>") != std::string::npos)
        Fail("a completion promise that can never be printed");
    if (!r.model.empty() && (r.model.find('/') == std::string::npos || r.model.front() == '/' || r.model.back() == '/'))
        Fail("a model that is not provider/model");
}

/// A task whose directory is named by the input (bytes that are not UTF-8 included; '/' and NUL,
/// which no file name holds, become '_'): it is listed and resolved under that very name, and
/// what a reply would carry of it is valid UTF-8 once made so (issue 11).
void TaskNamed(World& w, std::string_view bytes)
{
    std::string name(bytes.substr(0, 200));
    for (char& c : name)
        if (c == '/' || c == '\0') c = '_';
    if (name.empty() || name == "." || name == ".." || name == "t") return;
    std::string dir = w.dir + "/proj/tasks/" + name;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return;  // too long a name, say
    Write(dir + "/prompt.md", "x\n");
    bool listed = false;
    for (const ralph::Task& t : ListTasks(w.dir + "/proj"))
        if (t.name == name) listed = true;
    if (!listed) Fail("a task directory was not listed under its name");
    ralph::Result<ralph::Task> found = ResolveTask(name, w.dir + "/proj");
    if (!found) Fail("a listed task did not resolve");
    const ralph::Task& resolved = *found;
    if (resolved.name != name) Fail("a task resolved to another name");
    std::string line = jsonrpc::ValidUtf8Line(
        boost::json::serialize(boost::json::object{{"name", resolved.name}, {"task_dir", resolved.dir}}));
    if (!IsValidUtf8(line)) Fail("a task's name made UTF-8 is not");
    boost::system::error_code perr;
    (void)boost::json::parse(line, perr);
    if (perr) Fail("a task's name made UTF-8 is no JSON");
    fs::remove_all(dir, ec);
}

}  // namespace

int Task(const uint8_t* data, std::size_t size)
{
    if (size == 0) return 0;
    World& w = TheWorld();
    std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    if (data[0] == 0xff) {
        TaskNamed(w, rest);
        return 0;
    }
    switch (data[0] % 4) {
    case 0: {  // prd.json
        Write(w.task.dir + "/prd.json", rest);
        PrdStatus prd = ReadPrd(w.task.dir + "/prd.json");
        if (!prd.present) Fail("an existing prd.json read as absent");
        if (!prd.valid() && prd.error.empty()) Fail("invalid without a reason");
        if (prd.valid() && (prd.passing < 0 || prd.passing > prd.total)) Fail("more stories passing than there are");
        if (prd.complete() && prd.total == 0) Fail("complete without stories");
        break;
    }
    case 1: {  // ralph.ini
        Write(w.task.dir + "/ralph.ini", rest);
        try {
            CheckRunSettings(TaskRunSettings(RunSettings{}, w.task));
        } catch (const ConfigError& e) {
            if (std::string(e.what()).empty()) Fail("a config error without a message");
        }
        break;
    }
    case 2: {  // ralphd.conf
        Write(w.dir + "/ralphd.conf", rest);
        try {
            Config c = LoadConfig(w.dir + "/ralphd.conf", {});
            CheckRunSettings(c.run);
            if (c.server.port_min > c.server.port_max) Fail("port_range with FIRST > LAST");
            if (c.server.mode == "external" && c.server.url.empty()) Fail("external without a url");
        } catch (const ConfigError& e) {
            if (std::string(e.what()).empty()) Fail("a config error without a message");
        }
        break;
    }
    case 3: {  // prompt.md, rendered; and the promise searched in the agent's text
        std::size_t split = rest.find('\0');
        std::string_view tmpl = rest.substr(0, split);
        std::string promise = split == std::string_view::npos ? "COMPLETE" : std::string(rest.substr(split + 1, 16));
        Write(w.task.dir + "/prompt.md", tmpl);
        std::string source;
        std::string loaded = LoadPromptTemplate(w.task, &source);
        if (loaded != tmpl) Fail("prompt.md read back differently");
        PromptVars vars{w.task, 7, 2, 5, promise, std::string(tmpl.substr(0, 8)), std::string(tmpl.substr(0, 4))};
        std::string out = RenderPrompt(loaded, vars);
        if (loaded.find('{') == std::string::npos && out != loaded) Fail("a template without variables changed");
        (void)ContainsPromise(out, promise);
        (void)ContainsPromise(std::string(tmpl), promise);
        if (promise.find_first_not_of(" \t\r\n") != std::string::npos && promise.find_first_of("<>") == std::string::npos &&
            !ContainsPromise("x <promise> " + promise + "\n</promise>", promise))
            Fail("the promise was not found where it is");
        break;
    }
    }
    return 0;
}

}  // namespace ralph::fuzz
