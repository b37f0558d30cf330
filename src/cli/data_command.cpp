// `ssa data ...`: tokenizer commands (see ssa/cli/data_commands.h).
#include <CLI/CLI.hpp>

#include "ssa/cli/command.h"
#include "ssa/cli/data_commands.h"

namespace ssa::cli {
namespace {

const Registration kRegistration("data", [](CLI::App& app) {
  auto* data = app.add_subcommand("data", "Tokenizer commands: text to token ids and back");
  data->require_subcommand(1);
  add_data_codec_commands(*data);
});

}  // namespace
}  // namespace ssa::cli
