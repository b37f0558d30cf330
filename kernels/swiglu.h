// The SwiGLU of the Llama MLP, silu(gate) * up, forward and backward in one pass each, bf16 in and
// out with float32 arithmetic. Eager LibTorch spends four kernels and a [tokens, intermediate]
// temporary (silu(gate), kept for the backward) on what is one read of gate and up here.
//   y = silu(g) * u,  dg = dy * u * s * (1 + g * (1 - s)),  du = dy * silu(g),  s = sigmoid(g)
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssa::kernels {

// gate, up, y: `count` bf16 values each (any count; 16-byte aligned pointers).
void swiglu_forward(const __nv_bfloat16* gate, const __nv_bfloat16* up, __nv_bfloat16* y, int64_t count,
                    cudaStream_t stream);

// grad_y in; grad_gate and grad_up out (`count` bf16 values each).
void swiglu_backward(const __nv_bfloat16* gate, const __nv_bfloat16* up, const __nv_bfloat16* grad_y,
                     __nv_bfloat16* grad_gate, __nv_bfloat16* grad_up, int64_t count, cudaStream_t stream);

}  // namespace ssa::kernels
