// A pseudo-random permutation of [0, size) that is evaluated index by index in O(1) time and
// memory: a keyed Feistel network on the smallest even-bit-width power of two >= size, with
// cycle walking to stay inside [0, size).
//
// Hand-written because a shuffle stored as a vector costs 4-8 bytes per element, per rank and per
// epoch — gigabytes for the hundreds of millions of documents of a 100B-token corpus — and no
// library offers a seekable keyed permutation. Six rounds of a SplitMix64-based round function;
// the result depends only on (size, key), on every platform.
#pragma once

#include <cstdint>

namespace ssa::data {

class IndexPermutation {
 public:
  IndexPermutation(uint64_t size, uint64_t key);

  uint64_t size() const { return size_; }
  // The image of `index` (< size()); every index has a distinct image.
  uint64_t operator()(uint64_t index) const;

 private:
  uint64_t encrypt(uint64_t value) const;

  static constexpr int kRounds = 6;
  uint64_t size_;
  int half_bits_ = 1;
  uint64_t half_mask_ = 1;
  uint64_t round_keys_[kRounds] = {};
};

}  // namespace ssa::data
