// An attention op's results kept for a second run of the same layer. Activation checkpointing
// runs a layer again in the backward pass; the fused attention ops (cuDNN and FlashAttention
// through LibTorch, the block-sparse kernels) then take what they computed the first time instead
// of attending again, as torchtitan's selective checkpointing keeps SDPA's outputs. What is kept
// belongs to the op: its output and the softmax statistics its backward needs.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ssa/compat/torch_compat.h"

namespace ssa::attention {

struct KeptAttention {
  std::string op;                      // the op that kept them
  std::vector<torch::Tensor> tensors;  // empty until the first run
};

// The results `op` kept if there are some (taken: `kept` is empty afterwards), else `run()`,
// whose results are kept when `kept` is given and empty. Results another op kept are dropped and
// `op` runs without keeping (the ops choose alike in both runs of a layer; this is the guard).
// Null `kept`: always `run()`.
template <class Run>
std::vector<torch::Tensor> take_or_run(KeptAttention* kept, const char* op, Run&& run) {
  if (kept == nullptr) return run();
  if (!kept->tensors.empty()) {
    std::vector<torch::Tensor> results = std::exchange(kept->tensors, {});
    return kept->op == op ? results : run();
  }
  std::vector<torch::Tensor> results = run();
  *kept = {op, results};
  return results;
}

}  // namespace ssa::attention
