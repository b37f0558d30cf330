// AdamW (decoupled weight decay) over a list of tensors in a few launches: float32 master weights
// and moments, gradients in float32 or bf16 per tensor, and optionally the updated weight written
// as bf16 into the model's compute copy in the same pass. Written by hand because LibTorch's
// multi-tensor `_fused_adamw_` takes gradients only in the parameters' dtype and cannot write the
// bf16 copy: with bf16 training that costs a float32 copy of every gradient and another pass over
// the masters per step (about 10 of the 28-30 bytes per parameter this kernel moves).
//
// Per element, in float32 with IEEE square root and division (the kernels build with fast math),
// with the scalars of AdamWScalars (the host computes them in double, as ATen's per-tensor ops
// take them):
//   g = grad * grad_scale
//   p = p * decay_factor                                  (tensors that decay: 1 - lr wd)
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   p = p - step_size * m / (sqrt(v) / bias2_sqrt + eps)  (step_size = lr / (1 - beta1^t))
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssa::kernels {

struct AdamWTensor {
  float* param = nullptr;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  const void* grad = nullptr;                // float, or __nv_bfloat16 when grad_bf16
  __nv_bfloat16* compute_copy = nullptr;     // bf16 copy of the updated param, or nullptr
  int64_t numel = 0;
  bool grad_bf16 = false;
  bool decays = false;
};

struct AdamWScalars {
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float eps;
  float decay_factor;   // 1 - lr * weight_decay
  float step_size;      // lr / (1 - beta1^t)
  float bias2_sqrt;     // sqrt(1 - beta2^t)
  float grad_scale;     // gradient clipping factor
};

// Updates every tensor of `tensors[0, count)` (host array; any alignment, any sizes) on `stream`.
void adamw_update(const AdamWTensor* tensors, int64_t count, const AdamWScalars& scalars, cudaStream_t stream);

}  // namespace ssa::kernels
