// `ssa data tokenize` without the command line: text inputs -> datatrove token shards.
//
// Every document becomes [BOS] + encode(text) + EOS (BOS only when bos_id is set). Documents keep
// the input order, or follow a deterministic shuffle of the whole corpus when shuffle_seed is
// set. Encoding runs on `threads` threads; the output is byte-identical for any thread count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ssa/data/shard_writer.h"

namespace ssa::data {

// Text -> token ids; called from several threads at once, so it must be thread-safe.
using TokenEncoder = std::function<std::vector<uint32_t>(std::string_view text)>;

struct TokenizeOptions {
  std::vector<std::filesystem::path> inputs;  // files and folders (see list_input_files)
  std::filesystem::path output_folder;
  std::string name = "shard";
  std::string text_field = "text";
  uint32_t eos_id = 0;
  std::optional<uint32_t> bos_id;
  uint32_t token_width = 2;  // bytes; token_width_for_vocab(vocab size)
  std::string tokenizer_name;
  uint64_t shard_tokens = 100'000'000;
  std::optional<uint64_t> shuffle_seed;
  bool skip_bad = false;  // skip (and count) malformed lines instead of failing
  unsigned threads = 1;
};

struct TokenizeProgress {
  std::string_view phase;  // "tokenizing" or "shuffling"
  uint64_t input_bytes = 0;
  uint64_t documents = 0;
  uint64_t tokens = 0;
  double seconds = 0;
};

struct TokenizeSummary {
  uint64_t input_files = 0;
  uint64_t input_bytes = 0;
  uint64_t documents = 0;
  uint64_t tokens = 0;
  uint64_t skipped = 0;  // malformed lines skipped under skip_bad
  std::vector<WrittenShard> shards;
  double seconds = 0;
};

using TokenizeProgressCallback = std::function<void(const TokenizeProgress&)>;

// Throws UsageError for bad options, missing inputs, and (without skip_bad) the first malformed
// JSON line or missing/non-string text field in input order, naming file and line. A failed or
// interrupted run leaves only complete shards (see ShardWriter) and no shuffle staging folder.
TokenizeSummary tokenize_corpus(const TokenizeOptions& options, const TokenEncoder& encoder,
                                const TokenizeProgressCallback& progress = {});

}  // namespace ssa::data
