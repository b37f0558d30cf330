// `ssa config show|reference`: inspect configurations without running anything.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "ssa/cli/command.h"
#include "ssa/cli/config_options.h"
#include "ssa/config/loader.h"

namespace ssa::cli {
namespace {

const Registration kRegistration("config", [](CLI::App& app) {
  auto* config = app.add_subcommand("config", "Validate and print configurations");
  config->require_subcommand(1);

  auto show_options = std::make_shared<ConfigOptions>();
  auto* show = config->add_subcommand("show", "Validate the layered configuration and print it resolved");
  add_config_options(*show, *show_options);
  show->callback([show_options] {
    config::Config resolved;
    if (resolve_config(*show_options, resolved)) std::fputs(config::to_yaml(resolved).c_str(), stdout);
  });

  auto* reference = config->add_subcommand("reference", "Print the Markdown reference of every key (docs/configuration.md)");
  reference->callback([] { std::fputs(config::reference_markdown().c_str(), stdout); });
});

}  // namespace
}  // namespace ssa::cli
