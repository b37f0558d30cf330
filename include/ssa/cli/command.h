// Subcommand registry of the `ssa` binary. Each src/cli/*_command.cpp defines one subcommand
// group and registers it with a static Registration, so adding a command touches one file.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace ssa::cli {

// Adds the subcommand to `app`; the callback it installs runs the command and may throw
// ssa::UsageError / ConfigError (exit 2) or any std::exception (exit 1).
using CommandFactory = std::function<void(CLI::App& app)>;

struct Registration {
  Registration(std::string name, CommandFactory factory);
};

struct RegisteredCommand {
  std::string name;
  CommandFactory factory;
};

// All registered commands, sorted by name.
std::vector<RegisteredCommand> registered_commands();

// Exit code a command callback asks for (set by commands that end with a code other than 0,
// such as a training run stopped by a signal).
void set_exit_code(int code);
int requested_exit_code();

}  // namespace ssa::cli
