// Command-line options shared by every subcommand that takes a run configuration:
// `--config FILE` (repeatable, later files win), trailing `section.key=value` overrides and
// `--dump-config`.
#pragma once

#include <string>
#include <vector>

#include "ssa/config/config.h"

namespace CLI {
class App;
}

namespace ssa::cli {

struct ConfigOptions {
  std::vector<std::string> files;
  std::vector<std::string> overrides;
  bool dump = false;
};

void add_config_options(CLI::App& command, ConfigOptions& options);

// Resolves the configuration. With --dump-config it prints the resolved YAML and returns false
// (the command then ends without doing anything else).
bool resolve_config(const ConfigOptions& options, config::Config& out);

}  // namespace ssa::cli
