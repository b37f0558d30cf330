// Entry point of the `ssa` binary: builds the CLI11 app from the registered subcommands and maps
// exceptions to one-line errors and exit codes (see ssa/util/error.h).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>

#include "ssa/cli/command.h"
#include "ssa/util/error.h"

namespace ssa::cli {
namespace {
std::map<std::string, CommandFactory>& registry() {
  static std::map<std::string, CommandFactory> commands;
  return commands;
}
int g_exit_code = exit_code::kOk;
}  // namespace

Registration::Registration(std::string name, CommandFactory factory) {
  registry().emplace(std::move(name), std::move(factory));
}

std::vector<RegisteredCommand> registered_commands() {
  std::vector<RegisteredCommand> out;
  for (auto& [name, factory] : registry()) out.push_back({name, factory});
  return out;
}

void set_exit_code(int code) { g_exit_code = code; }
int requested_exit_code() { return g_exit_code; }

}  // namespace ssa::cli

int main(int argc, char** argv) {
  CLI::App app{"ssa: pretraining and evaluation of sparse-attention (SSA) language models", "ssa"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  for (const auto& command : ssa::cli::registered_commands()) command.factory(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : ssa::exit_code::kUsage;
  } catch (const ssa::UsageError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return ssa::exit_code::kUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return ssa::exit_code::kFailure;
  }
  return ssa::cli::requested_exit_code();
}
