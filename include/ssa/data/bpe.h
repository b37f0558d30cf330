// The BPE model of a byte-level tokenizer: vocabulary and ranked merges over raw bytes, applied
// to one pre-token ("word") at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ssa::data {

class BpeModel {
 public:
  struct Token {
    std::string bytes;  // raw bytes (byte-level spelling already decoded)
    uint32_t id;
  };
  struct Merge {
    std::string left, right;  // raw bytes; the merged token is left + right
  };
  struct Options {
    // A word that is itself a token is emitted whole, without merging (tokenizers' ignore_merges).
    bool ignore_merges = false;
    // Emitted for a byte that has no token; without it every byte must have one.
    std::optional<uint32_t> unk_id;
  };

  // Throws ssa::FormatError when the vocabulary and the merges disagree (a merge of unknown
  // tokens, a merge whose result is not a token, an id used twice, a byte without a token and no
  // unk id). Later duplicates of a merge override earlier ones, as in tokenizers and transformers.js.
  BpeModel(std::vector<Token> vocab, const std::vector<Merge>& merges, Options options);

  // Appends the ids of `word`. Among the applicable merges the lowest rank goes first, ties to
  // the leftmost pair. Thread-safe; each thread caches the words it encoded.
  void encode_word(std::string_view word, std::vector<uint32_t>& ids) const;

  std::optional<uint32_t> id_of(std::string_view bytes) const;
  // Raw bytes of every token, indexed by id (ids without a token are absent).
  const std::vector<std::optional<std::string>>& tokens_by_id() const { return bytes_by_id_; }
  size_t merge_count() const { return merge_count_; }

 private:
  struct PairEntry {
    uint64_t key;  // left id << 32 | right id; kEmptyPair for a free slot
    uint32_t rank;
    uint32_t merged;
  };
  static constexpr uint64_t kEmptyPair = ~uint64_t{0};

  struct VocabSlot {
    uint32_t id_plus_one = 0;  // 0 for a free slot
    uint32_t length = 0;
    char bytes[24] = {};  // the token's bytes when it is this short (almost all are)
  };

  const PairEntry* find_pair(uint32_t left, uint32_t right) const;
  void insert_pair(uint32_t left, uint32_t right, uint32_t rank, uint32_t merged);
  std::optional<uint32_t> find_token(std::string_view bytes, uint64_t hash) const;
  void encode_uncached(std::string_view word, uint64_t hash, std::vector<uint32_t>& ids) const;
  void merge(std::string_view word, std::vector<uint32_t>& ids) const;

  std::vector<std::optional<std::string>> bytes_by_id_;
  std::vector<VocabSlot> vocab_slots_;  // open addressing over bytes_by_id_
  uint64_t vocab_mask_ = 0;
  std::vector<PairEntry> pairs_;
  uint64_t pair_mask_ = 0;
  int pair_bits_ = 0;  // log2 of the merge table's size
  size_t merge_count_ = 0;
  uint32_t byte_ids_[256];
  Options options_;
  uint64_t instance_ = 0;  // tells the per-thread word caches of different models apart
};

}  // namespace ssa::data
