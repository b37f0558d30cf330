// The attention output gate of the paper's models: o * sigmoid(g), with g one logit per head
// (`headwise`, g [..., Hq] for o [..., Hq, D]) or per element (`elementwise`, g like o).
#pragma once

#include "ssa/compat/torch_compat.h"

namespace ssa::model {

// With `fused`, CUDA bf16 inputs go through kernels/output_gate.cu; everything else through
// output_gate_reference.
torch::Tensor output_gate(const torch::Tensor& o, const torch::Tensor& g, bool fused = true);

// ATen ops: o * sigmoid(g) in the inputs' dtype, g broadcast over D when head-wise. The ground
// truth of the kernel tests.
torch::Tensor output_gate_reference(const torch::Tensor& o, const torch::Tensor& g);

#if SSA_HAVE_CUDA_KERNELS
// CUDA bf16 o and g on one device, g of o's shape or of o's shape without its last dimension, and
// a head dimension the kernel takes (kernels/output_gate.h).
bool output_gate_cuda_supports(const torch::Tensor& o, const torch::Tensor& g);
// The kernels, differentiable in o and g.
torch::Tensor output_gate_cuda(const torch::Tensor& o, const torch::Tensor& g);
#endif

}  // namespace ssa::model
