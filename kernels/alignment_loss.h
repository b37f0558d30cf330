// The SSA alignment loss of one layer (attention/alignment_loss.h) in two passes, bf16 in, float32
// arithmetic: the forward reads both outputs once and reduces the distance deterministically (one
// partial sum per CTA, then a fixed-order sum); the backward reads them once more and writes both
// gradients. Eager LibTorch computes the two directions as separate losses (each an elementwise
// pass, a reduction and a backward pass).
//   loss = (w_s + w_c) * mean(dist(full - sparse))     (both directions have the same value)
//   d/d full = g * w_s / N * dist'(full - sparse),  d/d sparse = -g * w_c / N * dist'(full - sparse)
// dist: SmoothL1 with beta (0.5 x^2 / beta below beta, |x| - 0.5 beta above) or L2 (x^2).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ssa::kernels {

struct AlignmentLossShape {
  int64_t count = 0;   // N: elements of each output
  bool smooth_l1 = true;
  float beta = 1.0f;   // SmoothL1 only, > 0
};

// Device workspace of the forward in bytes (float32 partial sums).
size_t alignment_loss_forward_workspace_bytes(const AlignmentLossShape& shape);

// full, sparse: N bf16 values each (16-byte aligned). Writes loss[0] (float32, device) =
// scale * sum(dist(full - sparse)); the caller passes scale = (w_s + w_c) / N.
void alignment_loss_forward(const __nv_bfloat16* full, const __nv_bfloat16* sparse, float* loss, float scale,
                            void* workspace, const AlignmentLossShape& shape, cudaStream_t stream);

// grad_loss: the incoming gradient, one float32 on the device. Writes grad_full = grad_loss *
// full_scale * dist' and grad_sparse = -grad_loss * sparse_scale * dist' (bf16); either output may
// be null (that direction takes no gradient).
void alignment_loss_backward(const __nv_bfloat16* full, const __nv_bfloat16* sparse, const float* grad_loss,
                             float full_scale, float sparse_scale, __nv_bfloat16* grad_full,
                             __nv_bfloat16* grad_sparse, const AlignmentLossShape& shape, cudaStream_t stream);

}  // namespace ssa::kernels
