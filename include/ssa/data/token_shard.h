// One token file and its document table, in any ShardFormat. Tokens are read straight from a
// read-only memory map; opening checks every size and offset so that reads cannot go out of
// bounds later (FormatError, one line naming the file, otherwise).
//
// Documents: datatrove shards list document END offsets (in tokens) in NAME.ds.index. llm.c and
// raw streams have no index: opening scans the tokens once and cuts documents at a separator
// token (DocumentSeparator), keeping the ends in memory (8 bytes per document).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ssa/io/mapped_file.h"
#include "ssa/data/shard_format.h"

namespace ssa::data {

// How index-less streams are cut into documents. A separator that ends documents (EOS, as
// nanoGPT appends and llm.c's GPT-2 files effectively have) belongs to the document before it;
// one that starts documents (llm.c's Llama-3 files prefix each document with BOS) belongs to the
// document after it.
struct DocumentSeparator {
  uint32_t token = 0;
  bool ends_document = true;
};

class TokenShard {
 public:
  // `token_file` is NAME.ds (datatrove, with NAME.ds.index and NAME.ds.metadata beside it) or a
  // .bin file. `expected_width` (bytes, 0 = any) is checked against what the file says.
  static TokenShard open(const std::filesystem::path& token_file, ShardFormat format, uint32_t expected_width,
                         const DocumentSeparator& separator);

  const std::filesystem::path& path() const { return path_; }
  ShardFormat format() const { return format_; }
  uint32_t token_width() const { return width_; }
  uint64_t file_bytes() const { return file_.size(); }
  uint64_t token_count() const { return token_count_; }
  uint64_t document_count() const { return document_count_; }
  // datatrove: the tokenizer named in the metadata; empty for other formats.
  const std::string& tokenizer() const { return tokenizer_; }

  uint64_t document_end(uint64_t document) const;
  uint64_t document_begin(uint64_t document) const { return document == 0 ? 0 : document_end(document - 1); }

  uint32_t token(uint64_t index) const;
  // Tokens [begin, begin + count); the range must lie inside the shard.
  void copy_tokens(uint64_t begin, uint64_t count, uint32_t* out) const;

 private:
  std::filesystem::path path_;
  ShardFormat format_ = ShardFormat::datatrove;
  uint32_t width_ = 0;
  io::MappedFile file_;
  const std::byte* tokens_ = nullptr;
  uint64_t token_count_ = 0;
  uint64_t document_count_ = 0;
  std::string tokenizer_;
  io::MappedFile index_;                                       // datatrove
  std::shared_ptr<const std::vector<uint64_t>> scanned_ends_;  // index-less formats
};

}  // namespace ssa::data
