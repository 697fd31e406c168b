// import.*: bringing in the history of the earlier Python ralph (daemon/legacy_import.h).
#include "common/errors.h"
#include "common/json_util.h"
#include "common/paths.h"
#include "daemon/daemon.h"
#include "daemon/legacy_import.h"
#include "daemon/rpc_table.h"

namespace ralph {

namespace {

json::object ReportJson(const LegacyImportReport& report)
{
    json::array entries;
    for (const LegacyEntry& e : report.entries) {
        entries.push_back(json::object{
            {"task", e.task_name},
            {"legacy_status", e.legacy_status},
            {"action", e.action},
            {"run", e.run_id ? json::value(e.run_id) : json::value(nullptr)},
            {"status", e.status ? json::value(Name(*e.status)) : json::value(nullptr)},
            {"reason", e.reason == RunReason::kNone ? json::value(nullptr) : json::value(Name(e.reason))},
            {"message", e.message.empty() ? json::value(nullptr) : json::value(e.message)},
        });
    }
    json::array warnings;
    for (const std::string& w : report.warnings) warnings.push_back(json::value(w));
    return {{"path", report.path},
            {"imported", report.imported},
            {"already_imported", report.already_imported},
            {"skipped", report.skipped},
            {"entries", std::move(entries)},
            {"warnings", std::move(warnings)}};
}

json::object ImportLegacy(Daemon& d, const json::object& params)
{
    LegacyImportOptions options;
    options.path = ParamString(params, "path");
    if (options.path.empty()) options.path = GetEnv("HOME") + "/.local/share/ralph/sessions.db";
    try {
        return ReportJson(ImportLegacyDatabase(d.store(), options));
    } catch (const LegacyImportError& e) {
        throw RpcError(e.missing_file ? kNotFound : kInvalidParams, e.what());
    }
}

asio::awaitable<json::value> Legacy(CallContext& ctx, const json::object& params)
{
    co_return ImportLegacy(ctx.daemon, params);
}

}  // namespace

const std::vector<RpcMethod>& ImportMethods()
{
    static const std::vector<RpcMethod> methods = {
        {{"import.legacy",
          "Records the loops of the earlier Python ralph (its sessions.db, opened read-only and never modified) "
          "as finished runs, so their opencode sessions can be attached; importing again imports nothing twice.",
          {{"path", ParamType::String, false, "~/.local/share/ralph/sessions.db (the daemon's HOME)",
            "absolute path of the legacy database"}},
          "`{path, imported, already_imported, skipped, entries: [{task, legacy_status, action, run, status, reason, "
          "message}], warnings}`; `action` is imported, already_imported or skipped (with why). completed, stopped "
          "and failed are kept; checkpointed becomes stopped (user); running with its worker gone becomes stopped "
          "(legacy_worker_gone), with its worker alive (or on another machine) it is skipped. Every schema of the "
          "earlier ralph is read; columns it had not yet added are taken as empty. Imported runs keep "
          "`legacy: {agent, session_type, current_story, workspace_dir}` in their run JSON (null for ralph's own "
          "runs). Errors: -32001 `NOT_FOUND` (no such file), -32602 for a file without the `sessions` table or the "
          "columns every version wrote, naming what is missing"},
         Legacy},
    };
    return methods;
}

}  // namespace ralph
