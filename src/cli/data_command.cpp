// `ssa data ...`: tokenizer commands (see ssa/cli/data_commands.h).
#include <CLI/CLI.hpp>

#include "ssa/cli/command.h"
#include "ssa/cli/data_commands.h"

namespace ssa::cli {
namespace {

const Registration kRegistration("data", [](CLI::App& app) {
  auto* data = app.add_subcommand("data", "Tokenize text, build and inspect token shards");
  data->require_subcommand(1);
  add_data_codec_commands(*data);
  add_data_shard_commands(*data);
});

}  // namespace
}  // namespace ssa::cli
