// Hashes whose values are fixed by this file alone (std::hash is not: it may differ between
// standard libraries and versions), for what must stay equal across machines and releases:
// shuffle keys derived from seeds, and shard-set fingerprints stored in checkpoints.
#pragma once

#include <cstdint>
#include <string_view>

namespace ssa::data {

// SplitMix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A key from several integers (seed, source index, epoch, ...), order-sensitive.
inline uint64_t combine_keys(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b + 0x632be59bd9b4e019ull)); }

// 64-bit FNV-1a over bytes, fed piece by piece. Hand-written because it is a few lines and no
// dependency of ssa_core exposes a stable general-purpose hash.
class Fnv1a64 {
 public:
  void add(std::string_view bytes) {
    for (unsigned char c : bytes) {
      state_ ^= c;
      state_ *= 0x100000001b3ull;
    }
  }
  void add(uint64_t value) {
    char bytes[8];
    for (int k = 0; k < 8; ++k) bytes[k] = static_cast<char>(value >> (8 * k));
    add(std::string_view(bytes, 8));
  }
  // A string and its length, so that ("ab","c") and ("a","bc") differ.
  void add_field(std::string_view text) {
    add(static_cast<uint64_t>(text.size()));
    add(text);
  }
  uint64_t value() const { return state_; }

 private:
  uint64_t state_ = 0xcbf29ce484222325ull;
};

}  // namespace ssa::data
