// RMSNorm of the Llama decoder (HF's LlamaRMSNorm), forward and backward, bf16 in and out,
// float32 arithmetic:
//   rstd = 1 / sqrt(mean(x^2) + eps),  n = bf16(x * rstd),  y = bf16(weight * n)
// The forward rounds n to bf16 before the weight multiplies it, as HF does, so that logits match
// the eager model bit for bit up to the order of the mean's summation. The backward differentiates
// through the float32 n (the rounding has no gradient):
//   dn = dy * weight,  dx = rstd * (dn - n * mean(dn * n)),  dweight = sum over rows of dy * bf16(n)
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ssa::kernels {

// Widest row the kernels take (the threads of a CTA keep a row's weights in registers).
constexpr int64_t kRmsNormMaxDim = 8192;

// Throws std::invalid_argument unless 0 < dim <= kRmsNormMaxDim and dim is a multiple of 8.
void check_rms_norm_shape(int64_t rows, int64_t dim);

// x [rows, dim], weight [dim] bf16; writes y [rows, dim] bf16 and rstd [rows] float32 (for the backward).
void rms_norm_forward(const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* y, float* rstd,
                      int64_t rows, int64_t dim, float eps, cudaStream_t stream);

// Device workspace of the backward in bytes (float32 partial sums of dweight, one row per CTA).
size_t rms_norm_backward_workspace_bytes(int64_t rows, int64_t dim);

// grad_y [rows, dim] bf16 in; dx [rows, dim] and dweight [dim] bf16 out. `rstd` is the forward's.
void rms_norm_backward(const __nv_bfloat16* x, const __nv_bfloat16* weight, const float* rstd,
                       const __nv_bfloat16* grad_y, __nv_bfloat16* dx, __nv_bfloat16* dweight, void* workspace,
                       int64_t rows, int64_t dim, cudaStream_t stream);

}  // namespace ssa::kernels
