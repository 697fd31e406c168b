#include "common/errors.h"

namespace ralph {

const char* RpcCodeName(int code)
{
    switch (code) {
    case kParseError: return "PARSE_ERROR";
    case kInvalidRequest: return "INVALID_REQUEST";
    case kMethodNotFound: return "METHOD_NOT_FOUND";
    case kInvalidParams: return "INVALID_PARAMS";
    case kInternalError: return "INTERNAL_ERROR";
    case kNotFound: return "NOT_FOUND";
    case kTaskNotFound: return "TASK_NOT_FOUND";
    case kAlreadyRunning: return "ALREADY_RUNNING";
    case kInvalidState: return "INVALID_STATE";
    case kServerUnavailable: return "SERVER_UNAVAILABLE";
    case kWarmingUp: return "WARMING_UP";
    }
    return "ERROR";
}

}  // namespace ralph
