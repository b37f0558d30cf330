#include "ssa/attention/mode_sampler.h"

#include <string>

#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

// SplitMix64's finaliser (Steele, Lea and Flood 2014). Hand-written because the draw must be a
// pure function of its arguments (a counter-based generator); the standard engines are
// sequential and their state would have to be checkpointed and kept in step across ranks.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) from the 53 high bits of the hash of (seed, counter, stream).
double uniform(uint64_t seed, uint64_t counter, uint64_t stream) {
  const uint64_t bits = mix(mix(mix(seed) ^ counter) ^ stream);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

}  // namespace

ModeSampler::ModeSampler(uint64_t seed, double p_full, bool per_layer)
    : seed_(seed), p_full_(p_full), per_layer_(per_layer) {
  if (!(p_full >= 0.0 && p_full <= 1.0)) {
    throw ConfigError("ssa.p_full must lie in [0, 1], got " + std::to_string(p_full));
  }
}

std::vector<Mode> ModeSampler::modes(uint64_t counter, int64_t num_layers) const {
  std::vector<Mode> result;
  result.reserve(static_cast<size_t>(std::max<int64_t>(num_layers, 0)));
  const auto draw = [&](uint64_t stream) { return uniform(seed_, counter, stream) < p_full_ ? Mode::kFull : Mode::kSparse; };
  // Stream 0 is the shared draw; per-layer draws use streams 1..L.
  const Mode shared = draw(0);
  for (int64_t layer = 0; layer < num_layers; ++layer) {
    result.push_back(per_layer_ ? draw(static_cast<uint64_t>(layer) + 1) : shared);
  }
  return result;
}

}  // namespace ssa::attention
