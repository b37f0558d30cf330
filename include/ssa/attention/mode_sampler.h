// Draws the attention mode of SSA training. The draw is a pure function of (seed, micro-batch
// counter, layer), so it is reproducible, survives resume with nothing but the counter, and is
// identical on every data-parallel rank without communication.
#pragma once

#include <cstdint>
#include <vector>

#include "ssa/attention/attention_spec.h"

namespace ssa::attention {

class ModeSampler {
 public:
  ModeSampler(uint64_t seed, double p_full, bool per_layer);

  // Modes of every layer for micro-batch `counter` (all equal unless per_layer).
  std::vector<Mode> modes(uint64_t counter, int64_t num_layers) const;

 private:
  uint64_t seed_;
  double p_full_;
  bool per_layer_;
};

}  // namespace ssa::attention
