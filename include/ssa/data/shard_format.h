// On-disk layouts of token files the loader reads (docs/data-formats.md has the byte layouts).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ssa::data {

enum class ShardFormat {
  datatrove,  // NAME.ds + NAME.ds.index + NAME.ds.metadata (datatrove's DocumentTokenizer)
  llmc,       // llm.c .bin: 256 x int32 header, then uint16 (GPT-2) or uint32 (Llama-3) tokens
  raw_u16,    // nanoGPT .bin: bare little-endian uint16 tokens
  raw_u32,    // the same with uint32 tokens
};

// "datatrove" | "llmc" | "raw_u16" | "raw_u32"; anything else is a UsageError listing them.
ShardFormat parse_shard_format(std::string_view name);
std::string_view to_string(ShardFormat format);

// Bytes per token datatrove chooses for a vocabulary: 2 while every id fits uint16 (at most
// 65536 ids), else 4 (datatrove/utils/tokenization.py, token_size).
uint32_t token_width_for_vocab(std::size_t vocab_size);

}  // namespace ssa::data
