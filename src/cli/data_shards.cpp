// TEMPORARY stub (tokenizer helper's local testing only): replaced by the shard helper's file.
#include "ssa/cli/data_commands.h"

namespace ssa::cli {
void add_data_shard_commands(CLI::App&) {}
}  // namespace ssa::cli
