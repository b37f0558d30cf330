#include "ssa/data/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>

#include "ssa/data/byte_level.h"
#include "ssa/util/error.h"

namespace ssa::data {
namespace {

constexpr uint32_t kNoToken = ~uint32_t{0};

// A symbol of the word being merged. Symbols form a linked list over their first byte's
// position; a merge keeps the left symbol's position, so positions order ties like the reference.
struct Symbol {
  uint32_t id;
  int32_t prev;
  int32_t next;
};

struct Candidate {
  uint32_t rank;
  int32_t position;  // of the left symbol
  uint32_t left, right, merged;
  // Min-heap order on (rank, position) for std::push_heap / std::pop_heap.
  bool operator<(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : position > other.position;
  }
};

// Reused across words and calls: encode() runs concurrently in several threads.
struct Scratch {
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::vector<uint32_t> word_ids;
};
thread_local Scratch t_scratch;

// Per-thread cache of encoded words: two-way set-associative, so memory is bounded, no lock is
// taken, and two frequent words that share a set do not evict each other. Natural text repeats
// its words: most are found in this small, warm table instead of the large vocabulary and merge
// tables, and merges are rarely recomputed.
struct CachedWord {
  static constexpr uint32_t kInline = 6;  // most words are one to three tokens
  uint64_t hash = 0;
  std::string word;  // empty: unused
  uint32_t count = 0;
  uint32_t inline_ids[kInline];
  std::vector<uint32_t> more_ids;  // all ids when there are more than kInline

  void append_to(std::vector<uint32_t>& ids) const {
    if (count > kInline) {
      ids.insert(ids.end(), more_ids.begin(), more_ids.end());
    } else {
      for (uint32_t k = 0; k < count; ++k) ids.push_back(inline_ids[k]);
    }
  }
  void assign(const std::vector<uint32_t>& ids) {
    count = static_cast<uint32_t>(ids.size());
    if (count > kInline) {
      more_ids = ids;
    } else {
      std::copy(ids.begin(), ids.end(), inline_ids);
    }
  }
};
struct CacheSet {
  CachedWord ways[2];
  int recent = 0;  // the way hit or filled last; the other one is replaced next
};
struct WordCache {
  static constexpr size_t kSets = size_t{1} << 15;  // 64K words, about 6 MB
  static constexpr size_t kLongestWord = 256;       // longer words rarely repeat
  uint64_t instance = 0;                            // the model whose words the cache holds
  std::vector<CacheSet> sets = std::vector<CacheSet>(kSets);
};

// The caches of the models this thread used last, most recent first.
WordCache& word_cache(uint64_t instance) {
  static constexpr size_t kModelsPerThread = 2;
  thread_local std::vector<std::unique_ptr<WordCache>> caches;
  auto it = std::find_if(caches.begin(), caches.end(), [&](const auto& cache) { return cache->instance == instance; });
  if (it == caches.end()) {
    if (caches.size() == kModelsPerThread) caches.pop_back();
    caches.insert(caches.begin(), std::make_unique<WordCache>());
    caches.front()->instance = instance;
  } else if (it != caches.begin()) {
    std::rotate(caches.begin(), it, it + 1);
  }
  return *caches.front();
}

std::atomic<uint64_t> g_next_instance{1};

uint64_t hash_bytes(std::string_view bytes) { return std::hash<std::string_view>{}(bytes); }

uint64_t pair_key(uint32_t left, uint32_t right) { return (uint64_t{left} << 32) | right; }

// Fibonacci hashing of the 64-bit pair key: the top `bits` bits of the product mix every bit.
uint64_t pair_slot(uint64_t key, int bits) { return (key * 0x9E3779B97F4A7C15ULL) >> (64 - bits); }

// A token as tokenizer.json spells it, for error messages.
std::string printable(std::string_view bytes) { return fmt::format("'{}'", byte_level_encode(bytes)); }

}  // namespace

BpeModel::BpeModel(std::vector<Token> vocab, const std::vector<Merge>& merges, Options options)
    : options_(options) {
  uint32_t max_id = 0;
  for (const auto& token : vocab) {
    if (token.id >= kNoToken) throw FormatError(fmt::format("model.vocab: id {} is too large", token.id));
    max_id = std::max(max_id, token.id);
  }
  bytes_by_id_.resize(vocab.empty() ? 0 : size_t{max_id} + 1);
  for (auto& token : vocab) {
    auto& slot = bytes_by_id_[token.id];
    if (slot) {
      throw FormatError(fmt::format("model.vocab: id {} is used by both {} and {}", token.id,
                                    printable(*slot), printable(token.bytes)));
    }
    slot = std::move(token.bytes);
  }
  // Open addressing at a load factor of at most 1/2; short tokens are stored in the slot itself,
  // so a lookup usually touches one cache line. Hand-written for the same reason as the merge
  // table below: one lookup per word is the hot path of encoding.
  size_t vocab_capacity = 16;
  while (vocab_capacity < vocab.size() * 2) vocab_capacity *= 2;
  vocab_slots_.assign(vocab_capacity, VocabSlot{});
  vocab_mask_ = vocab_capacity - 1;
  for (uint32_t id = 0; id < bytes_by_id_.size(); ++id) {
    if (!bytes_by_id_[id]) continue;
    const std::string& bytes = *bytes_by_id_[id];
    uint64_t slot = hash_bytes(bytes) & vocab_mask_;
    while (vocab_slots_[slot].id_plus_one != 0) slot = (slot + 1) & vocab_mask_;
    VocabSlot& entry = vocab_slots_[slot];
    entry.id_plus_one = id + 1;
    entry.length = static_cast<uint32_t>(bytes.size());
    std::memcpy(entry.bytes, bytes.data(), std::min(bytes.size(), sizeof entry.bytes));
  }
  instance_ = g_next_instance++;

  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const auto id = id_of(std::string_view(&c, 1));
    byte_ids_[b] = id ? *id : kNoToken;
    if (!id && !options_.unk_id) {
      throw FormatError(fmt::format(
          "model.vocab has no token for the byte 0x{:02X} and the model has no unk_token", b));
    }
  }

  // Open addressing at a load factor of at most 3/4. Hand-written rather than std::unordered_map
  // because this lookup is the inner loop of every merge, and a flat table of 16-byte entries
  // keyed by the id pair is several times faster than node-based buckets (fewer cache misses).
  pair_bits_ = 4;
  while ((size_t{1} << pair_bits_) * 3 < merges.size() * 4) ++pair_bits_;
  pairs_.assign(size_t{1} << pair_bits_, PairEntry{kEmptyPair, 0, 0});
  pair_mask_ = pairs_.size() - 1;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& merge = merges[rank];
    const auto left = id_of(merge.left), right = id_of(merge.right);
    if (!left || !right) {
      throw FormatError(fmt::format("model.merges[{}]: {} is not in model.vocab", rank,
                                    printable(left ? merge.right : merge.left)));
    }
    const auto merged = id_of(merge.left + merge.right);
    if (!merged) {
      throw FormatError(fmt::format("model.merges[{}]: the merged token {} is not in model.vocab",
                                    rank, printable(merge.left + merge.right)));
    }
    insert_pair(*left, *right, static_cast<uint32_t>(rank), *merged);
  }
  merge_count_ = merges.size();
}

void BpeModel::insert_pair(uint32_t left, uint32_t right, uint32_t rank, uint32_t merged) {
  const uint64_t key = pair_key(left, right);
  for (uint64_t slot = pair_slot(key, pair_bits_);; slot = (slot + 1) & pair_mask_) {
    auto& entry = pairs_[slot];
    if (entry.key == kEmptyPair || entry.key == key) {
      entry = PairEntry{key, rank, merged};
      return;
    }
  }
}

const BpeModel::PairEntry* BpeModel::find_pair(uint32_t left, uint32_t right) const {
  const uint64_t key = pair_key(left, right);
  for (uint64_t slot = pair_slot(key, pair_bits_);; slot = (slot + 1) & pair_mask_) {
    const auto& entry = pairs_[slot];
    if (entry.key == key) return &entry;
    if (entry.key == kEmptyPair) return nullptr;
  }
}

std::optional<uint32_t> BpeModel::id_of(std::string_view bytes) const { return find_token(bytes, hash_bytes(bytes)); }

std::optional<uint32_t> BpeModel::find_token(std::string_view bytes, uint64_t hash) const {
  for (uint64_t slot = hash & vocab_mask_;; slot = (slot + 1) & vocab_mask_) {
    const VocabSlot& entry = vocab_slots_[slot];
    if (entry.id_plus_one == 0) return std::nullopt;
    if (entry.length != bytes.size()) continue;
    const bool equal = bytes.size() <= sizeof entry.bytes
                           ? std::memcmp(entry.bytes, bytes.data(), bytes.size()) == 0
                           : *bytes_by_id_[entry.id_plus_one - 1] == bytes;
    if (equal) return entry.id_plus_one - 1;
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<uint32_t>& ids) const {
  if (word.empty()) return;
  const uint64_t hash = hash_bytes(word);
  if (word.size() > WordCache::kLongestWord) return encode_uncached(word, hash, ids);
  WordCache& cache = word_cache(instance_);
  CacheSet& set = cache.sets[hash & (WordCache::kSets - 1)];
  for (int way = 0; way < 2; ++way) {
    const CachedWord& entry = set.ways[way];
    if (entry.hash == hash && entry.word == word) {
      set.recent = way;
      entry.append_to(ids);
      return;
    }
  }
  auto& word_ids = t_scratch.word_ids;
  word_ids.clear();
  encode_uncached(word, hash, word_ids);
  set.recent = 1 - set.recent;
  CachedWord& entry = set.ways[set.recent];
  entry.hash = hash;
  entry.word.assign(word);
  entry.assign(word_ids);
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
}

void BpeModel::encode_uncached(std::string_view word, uint64_t hash, std::vector<uint32_t>& ids) const {
  if (options_.ignore_merges) {
    if (const auto id = find_token(word, hash)) {
      ids.push_back(*id);
      return;
    }
  }
  merge(word, ids);
}

void BpeModel::merge(std::string_view word, std::vector<uint32_t>& ids) const {
  const auto emit = [&](uint32_t id) { ids.push_back(id == kNoToken ? *options_.unk_id : id); };
  if (word.size() == 1) {
    emit(byte_ids_[static_cast<uint8_t>(word[0])]);
    return;
  }

  auto& symbols = t_scratch.symbols;
  auto& heap = t_scratch.heap;
  const auto n = static_cast<int32_t>(word.size());
  symbols.resize(word.size());
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    symbols[i] = Symbol{byte_ids_[static_cast<uint8_t>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }
  const auto push_candidate = [&](int32_t position) {
    const auto& left = symbols[position];
    if (left.next < 0) return;
    const uint32_t right = symbols[left.next].id;
    if (left.id == kNoToken || right == kNoToken) return;  // a byte without a token never merges
    if (const auto* pair = find_pair(left.id, right)) {
      heap.push_back(Candidate{pair->rank, position, left.id, right, pair->merged});
      std::push_heap(heap.begin(), heap.end());
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_candidate(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate top = heap.back();
    heap.pop_back();
    auto& left = symbols[top.position];
    // Stale when either side has merged since: a symbol's id only ever grows into a longer
    // token, so equal ids at the same position mean the pair is unchanged.
    if (left.id != top.left || left.next < 0 || symbols[left.next].id != top.right) continue;
    const int32_t absorbed = left.next;
    left.id = top.merged;
    left.next = symbols[absorbed].next;
    if (left.next >= 0) symbols[left.next].prev = top.position;
    symbols[absorbed].id = kNoToken;
    if (left.prev >= 0) push_candidate(left.prev);
    push_candidate(top.position);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) emit(symbols[i].id);
}

}  // namespace ssa::data
