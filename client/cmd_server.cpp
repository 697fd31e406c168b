#include "client/commands.h"

namespace ralph {

const std::vector<Command>& ServerCommands()
{
    static const std::vector<Command> commands = {};
    return commands;
}

}  // namespace ralph
