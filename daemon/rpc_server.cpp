#include "daemon/rpc_table.h"

namespace ralph {

const std::vector<RpcMethod>& ServerMethods()
{
    static const std::vector<RpcMethod> methods = {};
    return methods;
}

}  // namespace ralph
