// One forward pass worth of training rows, as the model consumes them.
#pragma once

#include <cstdint>

#include "ssa/compat/torch_compat.h"

namespace ssa::train {

// Rows of seq_len + 1 tokens become inputs (the first seq_len) and targets (the last seq_len).
struct MicroBatch {
  torch::Tensor inputs;     // int64 [B, T]
  torch::Tensor targets;    // int64 [B, T]; kIgnoreTarget where the token is not in the loss
  torch::Tensor positions;  // int64 [B, T]; restart at every document
  int64_t target_tokens = 0;  // targets in the loss

  static constexpr int64_t kIgnoreTarget = -100;

  MicroBatch to(torch::Device device) const;
};

}  // namespace ssa::train
