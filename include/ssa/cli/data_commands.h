// The `ssa data` subcommand group: data_command.cpp registers it, each file that implements a
// part of it adds its subcommands.
#pragma once

namespace CLI {
class App;
}

namespace ssa::cli {

// `ssa data encode|decode` and the hidden `ssa data bench-tokenizer`.
void add_data_codec_commands(CLI::App& data);

// `ssa data tokenize|inspect`: text corpora to token shards, and shard summaries.
void add_data_shard_commands(CLI::App& data);

}  // namespace ssa::cli
