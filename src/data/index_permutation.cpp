#include "ssa/data/index_permutation.h"

#include "ssa/data/stable_hash.h"

namespace ssa::data {

IndexPermutation::IndexPermutation(uint64_t size, uint64_t key) : size_(size) {
  // Domain 2^(2 * half_bits) >= size, so cycle walking needs fewer than 4 steps on average.
  while (half_bits_ < 32 && (uint64_t{1} << (2 * half_bits_)) < size) ++half_bits_;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
  uint64_t state = key;
  for (auto& round_key : round_keys_) {
    state = mix64(state);
    round_key = state;
  }
}

uint64_t IndexPermutation::encrypt(uint64_t value) const {
  uint64_t left = value >> half_bits_, right = value & half_mask_;
  for (const uint64_t round_key : round_keys_) {
    const uint64_t mixed = left ^ (mix64(right ^ round_key) & half_mask_);
    left = right;
    right = mixed;
  }
  return (left << half_bits_) | right;
}

uint64_t IndexPermutation::operator()(uint64_t index) const {
  // Each Feistel round is a bijection of the 2^(2h) domain; walking the cycle from `index` until
  // it re-enters [0, size) keeps the map a bijection of [0, size).
  uint64_t value = encrypt(index);
  while (value >= size_) value = encrypt(value);
  return value;
}

}  // namespace ssa::data
