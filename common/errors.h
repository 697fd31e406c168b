// Error codes of the socket API: the JSON-RPC 2.0 ones and ralph's own (SPEC §5).
#pragma once

#include <stdexcept>
#include <string>

namespace ralph {

enum RpcCode : int {
    kParseError = -32700,
    kInvalidRequest = -32600,
    kMethodNotFound = -32601,
    kInvalidParams = -32602,
    kInternalError = -32603,
    kNotFound = -32001,
    kTaskNotFound = -32004,
    kAlreadyRunning = -32005,
    kInvalidState = -32006,
    kServerUnavailable = -32010,
    kWarmingUp = -32011,
};

/// The symbolic name of a code, e.g. "TASK_NOT_FOUND", used by `--json` output and docs.
const char* RpcCodeName(int code);

/// Thrown by RPC handlers; the dispatcher turns it into a JSON-RPC error response.
struct RpcError : std::runtime_error {
    RpcError(int c, const std::string& message) : std::runtime_error(message), code(c) {}
    int code;
};

}  // namespace ralph
