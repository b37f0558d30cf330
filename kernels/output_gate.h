// The attention output gate of the paper's models, y = o * sigmoid(g), forward and backward in one
// pass each, bf16 in and out with float32 arithmetic. Eager LibTorch spends a sigmoid, a broadcast
// product and, backward, a product, a product-and-sum over the head dimension and the sigmoid's
// backward on it.
//   head-wise (g one value per row of D): y = o s, do = dy s, dg = s (1 - s) sum_d dy o
//   element-wise (g like o):             y = o s, do = dy s, dg = s (1 - s) dy o
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssa::kernels {

struct OutputGateShape {
  int64_t rows = 0;      // B * T * Hq
  int64_t head_dim = 0;  // D
  bool elementwise = false;
};

// Head-wise gates need D / 8 to be a power of two of at most 32 (D in 8, 16, ..., 256).
bool output_gate_supports(const OutputGateShape& shape);

// o and y: rows x D bf16; g: rows (head-wise) or rows x D (element-wise) bf16. 16-byte aligned.
void output_gate_forward(const __nv_bfloat16* o, const __nv_bfloat16* g, __nv_bfloat16* y,
                         const OutputGateShape& shape, cudaStream_t stream);

// grad_y in; grad_o (like o) and grad_g (like g) out.
void output_gate_backward(const __nv_bfloat16* o, const __nv_bfloat16* g, const __nv_bfloat16* grad_y,
                          __nv_bfloat16* grad_o, __nv_bfloat16* grad_g, const OutputGateShape& shape,
                          cudaStream_t stream);

}  // namespace ssa::kernels
