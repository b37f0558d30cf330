// The gated activation of the Llama MLP: silu(gate) * up.
#pragma once

#include "ssa/compat/torch_compat.h"

namespace ssa::model {

// gate and up of one shape. With `fused`, CUDA bf16 inputs go through kernels/swiglu.cu; everything
// else through swiglu_reference.
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up, bool fused = true);

// ATen ops, as HF: silu(gate) * up in the inputs' dtype. The ground truth of the kernel tests.
torch::Tensor swiglu_reference(const torch::Tensor& gate, const torch::Tensor& up);

#if SSA_HAVE_CUDA_KERNELS
// CUDA bf16 gate and up of one shape on one device.
bool swiglu_cuda_supports(const torch::Tensor& gate, const torch::Tensor& up);
// The kernels, differentiable in gate and up.
torch::Tensor swiglu_cuda(const torch::Tensor& gate, const torch::Tensor& up);
#endif

}  // namespace ssa::model
