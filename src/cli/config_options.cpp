#include "ssa/cli/config_options.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "ssa/config/loader.h"

namespace ssa::cli {

void add_config_options(CLI::App& command, ConfigOptions& options) {
  // One file per --config, so overrides may follow it directly: `-c a.yaml model.num_layers=4`.
  command.add_option("--config,-c", options.files, "YAML configuration file; repeat to layer (later files win)")
      ->allow_extra_args(false);
  command.add_option("overrides", options.overrides, "Dotted overrides section.key=value (win last)");
  command.add_flag("--dump-config", options.dump, "Print the resolved configuration and exit");
}

bool resolve_config(const ConfigOptions& options, config::Config& out) {
  out = config::load(options.files, options.overrides);
  if (options.dump) {
    std::fputs(config::to_yaml(out).c_str(), stdout);
    return false;
  }
  return true;
}

}  // namespace ssa::cli
