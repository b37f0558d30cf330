#include "ssa/data/shard_metadata.h"

#include <fmt/format.h>

#include <cmath>

#include "ssa/util/error.h"

namespace ssa::data {

std::string format_shard_metadata(const ShardMetadata& metadata) {
  return fmt::format("{}|{}\n{}\n{}", metadata.tokenizer, metadata.token_width, metadata.token_count,
                     humanize_token_count(metadata.token_count));
}

namespace {

bool parse_decimal(std::string_view text, uint64_t& value) {
  if (text.empty() || text.size() > 19) return false;
  value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

std::string_view trim_line_end(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  return line;
}

}  // namespace

ShardMetadata parse_shard_metadata(std::string_view text, const std::filesystem::path& file) {
  const size_t first_end = text.find('\n');
  if (first_end == std::string_view::npos) {
    throw FormatError(fmt::format("{}: expected 'tokenizer|token_size' and a token count on two lines", file.string()));
  }
  const std::string_view first = trim_line_end(text.substr(0, first_end));
  std::string_view rest = text.substr(first_end + 1);
  const std::string_view second = trim_line_end(rest.substr(0, rest.find('\n')));

  const size_t bar = first.rfind('|');
  uint64_t width = 0, count = 0;
  if (bar == std::string_view::npos || !parse_decimal(first.substr(bar + 1), width)) {
    throw FormatError(fmt::format("{}: first line '{}' is not 'tokenizer|token_size'", file.string(), first));
  }
  if (width != 2 && width != 4) {
    throw FormatError(fmt::format("{}: token size {} (expected 2 or 4 bytes)", file.string(), width));
  }
  if (!parse_decimal(second, count)) {
    throw FormatError(fmt::format("{}: second line '{}' is not a token count", file.string(), second));
  }
  return ShardMetadata{std::string(first.substr(0, bar)), static_cast<uint32_t>(width), count};
}

std::string humanize_token_count(uint64_t count) {
  // humanize.metric: exponent of the leading digit, SI prefix per 3 exponents, then
  // max(0, 3 - exponent % 3 - 1) decimals; Python's format and fmt round the same way.
  const double value = static_cast<double>(count);
  const int exponent = count == 0 ? 0 : static_cast<int>(std::floor(std::log10(value)));
  const int group = exponent / 3;
  const double scaled = value / std::pow(10.0, group * 3);
  const int decimals = std::max(0, 3 - exponent % 3 - 1);
  static constexpr const char* kPrefixes[] = {"", "k", "M", "G", "T", "P", "E"};
  return fmt::format("{:.{}f} {}T", scaled, decimals, kPrefixes[group]);
}

}  // namespace ssa::data
