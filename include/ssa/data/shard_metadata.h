// The text file NAME.ds.metadata next to a datatrove shard. datatrove writes three lines, with
// no newline after the last (pipeline/tokens/tokenizer.py, TokenizedFile.write_final_metadata):
//   <tokenizer name or path>|<bytes per token>
//   <token count>
//   <token count humanized, e.g. "1.23 MT">
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace ssa::data {

struct ShardMetadata {
  std::string tokenizer;    // may itself contain '|'; the width is after the last one
  uint32_t token_width = 0; // 2 or 4
  uint64_t token_count = 0;
};

std::string format_shard_metadata(const ShardMetadata& metadata);

// Reads the first two lines (the third is informational). Throws FormatError naming `file` when
// they are missing or malformed, or the width is not 2 or 4.
ShardMetadata parse_shard_metadata(std::string_view text, const std::filesystem::path& file);

// humanize.metric(count, unit="T") as datatrove calls it: three significant digits and an SI
// prefix, e.g. 0 -> "0.00 T", 12 -> "12.0 T", 123456 -> "123 kT", 1234567 -> "1.23 MT".
std::string humanize_token_count(uint64_t count);

}  // namespace ssa::data
