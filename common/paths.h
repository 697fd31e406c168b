// Where ralph keeps its socket, state and configuration (SPEC §5, §6).
#pragma once

#include <string>

namespace ralph {

/// $RALPH_SOCKET, else $XDG_RUNTIME_DIR/ralph/ralphd.sock, else /tmp/ralph-<uid>/ralphd.sock.
std::string DefaultSocketPath();
/// $RALPH_STATE_DIR, else $XDG_STATE_HOME/ralph, else ~/.local/state/ralph.
std::string DefaultStateDir();
/// $RALPH_CONFIG, else $XDG_CONFIG_HOME/ralph/ralphd.conf, else ~/.config/ralph/ralphd.conf.
std::string DefaultConfigPath();
/// $XDG_CONFIG_HOME/ralph, else ~/.config/ralph (where the user-wide prompt.md lives).
std::string UserConfigDir();

/// The directory part of a path ("." when there is none).
std::string DirName(const std::string& path);

/// Creates a directory and its parents with the given mode for the ones it creates.
/// Returns an empty string, or an error message naming the path.
std::string MakeDirs(const std::string& path, unsigned mode);

/// The value of an environment variable, or "" when unset.
std::string GetEnv(const char* name);

}  // namespace ralph
