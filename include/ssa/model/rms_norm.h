// RMSNorm as HF's LlamaRMSNorm: normalise in float32, cast back, then scale by the weight.
#pragma once

#include "ssa/compat/torch_compat.h"

namespace ssa::model {

// x [..., dim] scaled by weight [dim]. With `fused`, CUDA bf16 inputs the kernels take
// (rms_norm_cuda_supports) go through kernels/rms_norm.cu; everything else through
// rms_norm_reference.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, bool fused = true);

// ATen ops: weight * (x.float() * rsqrt(mean(x.float()^2) + eps)).to(x.dtype). Runs anywhere;
// the ground truth of the kernel tests.
torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& weight, double eps);

#if SSA_HAVE_CUDA_KERNELS
// CUDA bf16 x and weight on one device, a row width the kernels take (a multiple of 8, at most 8192).
bool rms_norm_cuda_supports(const torch::Tensor& x, const torch::Tensor& weight);
// The kernels, differentiable in x and weight.
torch::Tensor rms_norm_cuda(const torch::Tensor& x, const torch::Tensor& weight, double eps);
#endif

}  // namespace ssa::model
