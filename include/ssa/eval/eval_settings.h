// The grid `ssa eval` runs: every attention mode crossed with every receptive field. A receptive
// field r is r / block_size blocks per query (topk), the current block included; full attention
// has no receptive field and runs once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ssa/attention/attention_spec.h"

namespace ssa::eval {

struct EvalSetting {
  attention::Mode mode = attention::Mode::kFull;
  std::optional<int64_t> receptive_field;  // tokens; set for sparse settings
  attention::SparseSpec sparse;            // topk = receptive_field / block_size for sparse settings

  std::string label() const;  // "full" or "sparse-256"
};

// Throws ssa::UsageError when a receptive field is not a positive multiple of the block size.
std::vector<EvalSetting> eval_settings(const std::vector<attention::Mode>& modes,
                                       const std::vector<int64_t>& receptive_fields, int64_t block_size,
                                       attention::Selection selection);

}  // namespace ssa::eval
