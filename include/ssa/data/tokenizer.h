// Byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json (Llama-3's, GPT-2 style
// ones). Encodes exactly as transformers.js / @lenml/tokenizers does (the parity test checks it),
// and much faster: PCRE2 JIT pre-tokenizer, id-pair merge table.
//
// encode() never adds BOS/EOS (callers add bos_id() / eos_id() where they want them); added and
// special tokens written in the text (e.g. "<|eot_id|>") become their ids. Invalid UTF-8 in the
// input is replaced by U+FFFD first, as a JavaScript TextDecoder would. Parity holds for
// characters assigned in the Unicode version of the system's PCRE2 (14.0 for PCRE2 10.42).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ssa::data {

class Tokenizer {
 public:
  // Throws ssa::UsageError when the file cannot be read or describes a tokenizer this class does
  // not support, ssa::FormatError when it is not valid JSON or is inconsistent.
  static Tokenizer from_file(const std::string& tokenizer_json_path);

  // Thread-safe: any number of threads may encode and decode with one Tokenizer.
  std::vector<uint32_t> encode(std::string_view text) const;
  // Appends the ids of `text` to `ids`.
  void encode(std::string_view text, std::vector<uint32_t>& ids) const;

  // The bytes the ids stand for, concatenated (added tokens give their content). Ids that split
  // a UTF-8 character give its bytes as they are. Throws ssa::UsageError naming an unknown id.
  std::string decode(const std::vector<uint32_t>& ids) const;

  // Max id + 1 over the model vocabulary and the added tokens.
  size_t vocab_size() const;
  // The id of a token spelled as in tokenizer.json: an added token's content, or a vocabulary
  // entry in the byte-level alphabet ("Ġthe" for " the").
  std::optional<uint32_t> token_to_id(std::string_view token) const;
  // "<|end_of_text|>" (Llama-3) or "<|endoftext|>" (GPT-2 style); throws ssa::UsageError if neither exists.
  uint32_t eos_id() const;
  // "<|begin_of_text|>" where present.
  std::optional<uint32_t> bos_id() const;
  // Short name for metadata: the folder of a file named tokenizer.json, else the file's stem.
  const std::string& name() const;

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ssa::data
