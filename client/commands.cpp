#include "client/commands.h"

namespace ralph {

namespace po = boost::program_options;

std::vector<const Command*> AllCommands()
{
    std::vector<const Command*> out;
    for (const auto* group : {&RunCommands(), &AttachCommands(), &ImportCommands(), &ServerCommands(), &DaemonCommands(), &CompletionCommands()})
        for (const Command& c : *group) out.push_back(&c);
    return out;
}

boost::json::value RunRef(const std::string& arg)
{
    if (!arg.empty() && arg.size() < 18 && arg.find_first_not_of("0123456789") == std::string::npos)
        return std::stoll(arg);
    return boost::json::value(arg);
}

po::variables_map ParseCommandArgs(const std::vector<std::string>& args, const po::options_description& options,
                                   const char* positional_name, int max_positional)
{
    po::positional_options_description positional;
    if (positional_name) positional.add(positional_name, max_positional);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
        po::notify(vm);
    } catch (const po::too_many_positional_options_error&) {
        throw UsageError("too many arguments");
    } catch (const po::error& e) {
        throw UsageError(e.what());
    }
    return vm;
}

}  // namespace ralph
