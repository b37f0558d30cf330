// Writes documents, in the order given, into datatrove shards NAME_00000.ds, NAME_00001.ds, ...
// (with .ds.index and .ds.metadata), starting a new shard once the current one holds at least
// `shard_tokens` tokens; a document is never split across shards.
//
// Crash safety: a shard's three files are written under temporary names (NAME.ds.tmp-*, which no
// reader lists) and renamed into place only when the shard is complete: tokens first, then the
// index, then the metadata. Every file is synced before its rename, so after a crash or kill a
// shard is either complete or lacks its metadata (which readers reject as incomplete).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ssa/io/atomic_file.h"

namespace ssa::data {

struct ShardWriterOptions {
  std::filesystem::path folder;  // created if missing
  std::string name = "shard";    // file name prefix
  uint32_t token_width = 2;      // 2 (uint16) or 4 (uint32)
  std::string tokenizer;         // first field of the metadata
  uint64_t shard_tokens = 100'000'000;
};

struct WrittenShard {
  std::filesystem::path path;  // NAME_#####.ds
  uint64_t tokens = 0;
  uint64_t documents = 0;
};

class ShardWriter {
 public:
  // Throws UsageError when the folder already holds shards of this name (NAME_*.ds*): mixing
  // them with a new set would silently change the data.
  explicit ShardWriter(ShardWriterOptions options);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Throws UsageError for a token that does not fit the token width.
  void add_document(const uint32_t* tokens, std::size_t count);
  void add_document(const std::vector<uint32_t>& tokens) { add_document(tokens.data(), tokens.size()); }

  // Completes the last shard; returns every shard written. Without finish() (an exception or
  // destruction mid-way), the shard in progress is removed and only complete shards remain.
  std::vector<WrittenShard> finish();

 private:
  void open_shard();
  void close_shard();

  ShardWriterOptions options_;
  std::unique_ptr<io::AtomicFileWriter> tokens_file_;
  std::vector<uint64_t> document_ends_;
  std::vector<char> encoded_;
  std::vector<WrittenShard> written_;
};

// The file name of shard `index` of set `name`: NAME_#####.ds.
std::string shard_file_name(const std::string& name, uint64_t index);

}  // namespace ssa::data
