// Rotary position embedding in HF's half-split layout, forward and backward, bf16 in and out with
// float32 tables and arithmetic. For i < D/2 (h = D/2):
//   y[i]     = x[i] cos[i] - x[i+h] sin[i]          dx[i]     = dy[i] cos[i] + dy[i+h] sin[i+h]
//   y[i+h]   = x[i+h] cos[i+h] + x[i] sin[i+h]      dx[i+h]   = dy[i+h] cos[i+h] - dy[i] sin[i]
// One read and one write of x, where eager LibTorch makes five passes and three temporaries.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssa::kernels {

struct RopeShape {
  int64_t batch = 0;
  int64_t length = 0;    // T
  int64_t heads = 0;     // H
  int64_t head_dim = 0;  // D, a multiple of 8
};

// Throws std::invalid_argument unless the sizes are non-negative and head_dim a positive multiple of 8.
void check_rope_shape(const RopeShape& shape);

// x [B, T, H, D] bf16, cos and sin [B, T, D] float32 (one row of each per token, shared by the
// heads); writes y [B, T, H, D]. With `backward` true, x is dy and y is dx.
void rope_apply(const __nv_bfloat16* x, const float* cos, const float* sin, __nv_bfloat16* y,
                const RopeShape& shape, bool backward, cudaStream_t stream);

}  // namespace ssa::kernels
