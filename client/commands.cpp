#include "client/commands.h"

#include "common/duration.h"

namespace ralph {

namespace po = boost::program_options;

std::vector<const Command*> AllCommands()
{
    std::vector<const Command*> out;
    for (const auto* group : {&RunCommands(), &GitCommands(), &TopCommands(), &AttachCommands(), &ImportCommands(), &ServerCommands(), &DaemonCommands(), &CompletionCommands()})
        for (const Command& c : *group) out.push_back(&c);
    return out;
}

const Command* FindCommand(const std::string& name)
{
    for (const Command* c : AllCommands())
        if (name == c->name) return c;
    return nullptr;
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

namespace {

std::string LongName(const CommandOption& o)
{
    std::string name = o.name;
    return name.substr(0, name.find(','));
}

char ShortName(const CommandOption& o)
{
    std::string name = o.name;
    auto comma = name.find(',');
    return comma == std::string::npos || comma + 1 >= name.size() ? '\0' : name[comma + 1];
}

const CommandOption* FindOption(const Command& command, const std::string& long_name)
{
    for (const CommandOption& o : command.options)
        if (LongName(o) == long_name) return &o;
    return nullptr;
}

}  // namespace

CommandArgs::CommandArgs(const Command& command, const std::vector<std::string>& args, const char* positional_name,
                         int max_positional)
    : command_(command), args_(args)
{
    po::options_description options;
    if (positional_name) options.add_options()(positional_name, po::value<std::string>());
    for (const CommandOption& o : command.options) {
        if (o.value) options.add_options()(o.name, po::value<std::string>(), o.help);
        else options.add_options()(o.name, po::bool_switch(), o.help);
    }
    vm_ = ParseCommandArgs(args, options, positional_name, max_positional);
}

bool CommandArgs::Switch(const char* name) const { return vm_.count(name) && vm_[name].as<bool>(); }

std::string CommandArgs::Text(const char* name) const { return Has(name) ? vm_[name].as<std::string>() : ""; }

std::string Positional(const CommandArgs& vm, const char* what)
{
    if (!vm.Has("ref")) throw UsageError(std::string("missing ") + what);
    return vm.Text("ref");
}

std::string CommandArgs::Spelling(const char* name) const
{
    const CommandOption* option = FindOption(command_, name);
    std::string long_form = std::string("--") + name;
    if (!option) return long_form;
    char short_name = ShortName(*option);
    std::string spelled = long_form;
    for (const std::string& a : args_) {
        if (a == "--") break;
        if (short_name && a.size() >= 2 && a[0] == '-' && a[1] == short_name) spelled = std::string("-") + short_name;
        else if (a.rfind("--", 0) == 0 && a.size() > 2 && long_form.rfind(a.substr(0, a.find('=')), 0) == 0)
            spelled = a.substr(0, a.find('='));  // the long form, or the prefix of it the user typed
    }
    return spelled;
}

long long CommandArgs::Int(const char* name, long long min, long long max) const
{
    std::string text = Text(name);
    std::size_t used = 0;
    long long n = 0;
    try {
        n = std::stoll(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (text.empty() || used != text.size() || n < min || n > max)
        throw UsageError(Spelling(name) + " '" + text + "': expected a whole number from " + std::to_string(min) +
                         " to " + std::to_string(max));
    return n;
}

std::string CommandArgs::Duration(const char* name) const
{
    std::string text = Text(name);
    auto d = ParseDuration(text);
    if (!d || d->count() <= 0)
        throw UsageError(Spelling(name) + " '" + text + "': expected a duration more than zero, " + kDurationUnits);
    return text;
}

double CommandArgs::Usd(const char* name) const
{
    std::string text = Text(name);
    std::string number = !text.empty() && text[0] == '$' ? text.substr(1) : text;
    std::size_t used = 0;
    double usd = -1;
    try {
        usd = std::stod(number, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (number.empty() || used != number.size() || !(usd >= 0) || usd > 1e9)
        throw UsageError(Spelling(name) + " '" + text + "': expected an amount of USD, e.g. 0.50 or 5");
    return usd;
}

std::string OptionsHelp(const Command& command)
{
    std::vector<std::pair<std::string, std::string>> rows;
    std::size_t width = 0;
    for (const CommandOption& o : command.options) {
        char short_name = ShortName(o);
        std::string left = short_name ? std::string("-") + short_name + ", " : std::string("    ");
        left += "--" + LongName(o);
        if (o.value) left += std::string(" ") + o.value;
        std::string right = o.help;
        if (o.default_text[0]) right += std::string(" (default: ") + o.default_text + ")";
        width = std::max(width, left.size());
        rows.emplace_back(left, right);
    }
    std::string out;
    for (auto& [left, right] : rows) out += "  " + left + std::string(width - left.size() + 3, ' ') + right + "\n";
    return out;
}

}  // namespace ralph
