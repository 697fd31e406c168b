// Where ralph keeps its socket, state and configuration (SPEC §5, §6).
#pragma once

#include <string>

namespace ralph {

/// $RALPH_SOCKET, else $XDG_RUNTIME_DIR/ralph/ralphd.sock, else /tmp/ralph-<uid>/ralphd.sock.
std::string DefaultSocketPath();
/// $XDG_RUNTIME_DIR/ralph, else /tmp/ralph-<uid>: the directory of the default socket.
std::string DefaultSocketDir();

/// Why `dir` may not hold ralph's socket, or "": it must be a directory itself (not a symbolic
/// link), owned by this user, and writable by no one else. `missing_ok`: a directory that does
/// not exist passes. The message names the directory and says what to do.
std::string CheckPrivateDir(const std::string& dir, bool missing_ok);

/// CheckPrivateDir for the socket's directory when it is the default one, the one another user
/// could have created first (/tmp is shared); "" for a directory the user chose.
std::string CheckSocketDir(const std::string& socket_path, bool missing_ok);

/// $RALPH_STATE_DIR, else $XDG_STATE_HOME/ralph, else ~/.local/state/ralph.
std::string DefaultStateDir();
/// Where run worktrees go (SPEC §9): $XDG_DATA_HOME/ralph/worktrees, else ~/.local/share/ralph/worktrees.
std::string WorktreesDir();
/// $RALPH_CONFIG, else $XDG_CONFIG_HOME/ralph/ralphd.conf, else ~/.config/ralph/ralphd.conf.
std::string DefaultConfigPath();
/// $XDG_CONFIG_HOME/ralph, else ~/.config/ralph (where the user-wide prompt.md lives).
std::string UserConfigDir();

/// The directory part of a path ("." when there is none).
std::string DirName(const std::string& path);

/// The canonical absolute path (symbolic links resolved), or "" when it cannot be resolved.
std::string RealPath(const std::string& path);

/// Creates a directory and its parents with the given mode for the ones it creates.
/// Returns an empty string, or an error message naming the path.
std::string MakeDirs(const std::string& path, unsigned mode);

/// The value of an environment variable, or "" when unset.
std::string GetEnv(const char* name);

}  // namespace ralph
