#include "ssa/data/shard_format.h"

#include <fmt/format.h>

#include "ssa/util/error.h"

namespace ssa::data {

ShardFormat parse_shard_format(std::string_view name) {
  if (name == "datatrove") return ShardFormat::datatrove;
  if (name == "llmc") return ShardFormat::llmc;
  if (name == "raw_u16") return ShardFormat::raw_u16;
  if (name == "raw_u32") return ShardFormat::raw_u32;
  throw UsageError(fmt::format("unknown shard format '{}' (datatrove, llmc, raw_u16, raw_u32)", name));
}

std::string_view to_string(ShardFormat format) {
  switch (format) {
    case ShardFormat::datatrove: return "datatrove";
    case ShardFormat::llmc: return "llmc";
    case ShardFormat::raw_u16: return "raw_u16";
    case ShardFormat::raw_u32: return "raw_u32";
  }
  return "?";
}

uint32_t token_width_for_vocab(std::size_t vocab_size) { return vocab_size > 65536 ? 4 : 2; }

}  // namespace ssa::data
