// The `ssa data` subcommand group is assembled from two files: the tokenizer commands
// (data_codec.cpp) and the token shard commands (data_shards.cpp); data_command.cpp registers it.
#pragma once

namespace CLI {
class App;
}

namespace ssa::cli {

// `ssa data encode|decode` and the hidden `ssa data bench-tokenizer`.
void add_data_codec_commands(CLI::App& data);
// `ssa data tokenize|inspect`: datatrove-compatible token shards.
void add_data_shard_commands(CLI::App& data);

}  // namespace ssa::cli
