// Global gradient L2 norm and the clipping factor derived from it.
#pragma once

#include <vector>

#include "ssa/compat/torch_compat.h"

namespace ssa::train {

// sqrt(sum over all tensors of the squared elements), accumulated in fp32; NaN or inf when any
// gradient is non-finite.
double global_grad_norm(const std::vector<torch::Tensor>& grads);

// The L2 norm of each gradient (fp32 or bf16; one pass per tensor, accumulated in fp32, an fp32
// result), stacked on the gradients' device;
// global_grad_norm is their norm. Shards of a gradient combine by summing their squares.
torch::Tensor gradient_norms(const std::vector<torch::Tensor>& grads);

// The factor every gradient is multiplied by so that the global norm is at most `max_norm`:
// max_norm / norm when norm exceeds it, else 1. max_norm 0 disables clipping.
double clip_factor(double norm, double max_norm);

}  // namespace ssa::train
