// Rotary position embedding in HF's half-split (`rotate_half`) layout, with the inverse
// frequencies of HF transformers' rope types (default, linear, llama3, yarn) computed in float32
// exactly as transformers does, so that checkpoints and logits match.
#pragma once

#include "ssa/compat/torch_compat.h"
#include "ssa/config/config.h"

namespace ssa::model {

struct RopeParameters {
  torch::Tensor inv_freq;         // float32 [head_dim / 2]
  double attention_scaling = 1.0;  // multiplies cos and sin (yarn's mscale), 1 otherwise
};

RopeParameters rope_parameters(const config::ModelConfig& config);

// cos and sin tables, float32 [B, T, head_dim] for position ids [B, T] (int64).
struct RopeTables {
  torch::Tensor cos;
  torch::Tensor sin;
};
RopeTables rope_tables(const RopeParameters& parameters, const torch::Tensor& position_ids);

// x [B, T, H, D] rotated by tables [B, T, D]. With `fused`, CUDA bf16 x goes through
// kernels/rope.cu (float32 tables and arithmetic, one rounding); everything else through
// apply_rope_reference.
torch::Tensor apply_rope(const torch::Tensor& x, const RopeTables& tables, bool fused = true);

// ATen ops, as HF: computed in x's dtype after casting the tables. The ground truth of the kernel tests.
torch::Tensor apply_rope_reference(const torch::Tensor& x, const RopeTables& tables);

#if SSA_HAVE_CUDA_KERNELS
// CUDA bf16 x [B, T, H, D] with D a multiple of 8, float32 tables [B, T, D] on its device.
bool apply_rope_cuda_supports(const torch::Tensor& x, const RopeTables& tables);
// The kernel, differentiable in x (the tables take no gradient).
torch::Tensor apply_rope_cuda(const torch::Tensor& x, const RopeTables& tables);
#endif

}  // namespace ssa::model
