// The token files of one data source: a folder (its *.ds files for datatrove, *.bin for the other
// formats, sorted by name, not recursive) or a single file. Documents are numbered across the
// shards in that order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ssa/data/shard_format.h"
#include "ssa/data/token_shard.h"

namespace ssa::data {

struct ShardSetOptions {
  ShardFormat format = ShardFormat::datatrove;
  uint32_t expected_width = 0;  // bytes per token; 0 = whatever the files say (all must agree)
  DocumentSeparator separator;  // index-less formats only
};

class ShardSet {
 public:
  // Throws UsageError for a missing path or a folder without shards, FormatError for a damaged
  // shard, shards of different token widths, or a datatrove NAME.ds.index without its NAME.ds.
  static ShardSet open(const std::filesystem::path& path, const ShardSetOptions& options);

  const std::filesystem::path& path() const { return path_; }
  ShardFormat format() const { return format_; }
  uint32_t token_width() const { return width_; }
  const std::vector<TokenShard>& shards() const { return shards_; }
  uint64_t document_count() const { return document_starts_.back(); }
  uint64_t token_count() const { return token_count_; }

  struct Document {
    const TokenShard* shard;
    uint64_t begin;   // token offset in the shard
    uint64_t length;  // tokens
  };
  // Document `d` of the whole set (0 <= d < document_count()).
  Document document(uint64_t d) const;
  uint64_t document_length(uint64_t d) const { return document(d).length; }

  // Hex digest of the format, the token width and, per shard, its file name, size in bytes,
  // token and document counts. Not paths or modification times: a copied or moved folder keeps
  // its fingerprint, a changed shard set does not.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  std::filesystem::path path_;
  ShardFormat format_ = ShardFormat::datatrove;
  uint32_t width_ = 0;
  std::vector<TokenShard> shards_;
  std::vector<uint64_t> document_starts_{0};  // per shard, then the total
  uint64_t token_count_ = 0;
  std::string fingerprint_;
};

}  // namespace ssa::data
