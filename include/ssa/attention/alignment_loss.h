// The SSA alignment loss between the gated full and sparse attention outputs of one layer
// (ssa-method.md section 3):
//   w_s * loss(o_full, sg(o_sparse)) + w_c * loss(sg(o_full), o_sparse)
// `sparsity` pulls full attention toward the sparse output, `commitment` anchors the sparse
// output to the full one. loss is SmoothL1 (beta) or L2 (squared error), mean reduction.
#pragma once

#include "ssa/compat/torch_compat.h"
#include "ssa/config/config.h"

namespace ssa::attention {

struct AlignSpec {
  bool smooth_l1 = true;
  double beta = 1.0;
  double sparsity_weight = 1.0;
  double commitment_weight = 1.0;
};

AlignSpec align_spec(const config::SsaAlignConfig& config);

// With `fused`, CUDA bf16 outputs go through kernels/alignment_loss.cu (a float32 scalar);
// everything else through alignment_loss_reference.
torch::Tensor alignment_loss(const torch::Tensor& o_full, const torch::Tensor& o_sparse, const AlignSpec& spec,
                             bool fused = true);

// ATen ops: the two directions as two losses with stop-gradients (a scalar in the outputs' dtype).
// The ground truth of the kernel tests.
torch::Tensor alignment_loss_reference(const torch::Tensor& o_full, const torch::Tensor& o_sparse,
                                       const AlignSpec& spec);

#if SSA_HAVE_CUDA_KERNELS
// CUDA bf16 outputs of one shape on one device.
bool alignment_loss_cuda_supports(const torch::Tensor& o_full, const torch::Tensor& o_sparse);
// The kernels, differentiable in o_full (when spec.sparsity_weight != 0) and o_sparse (when
// spec.commitment_weight != 0); float32 scalar.
torch::Tensor alignment_loss_cuda(const torch::Tensor& o_full, const torch::Tensor& o_sparse, const AlignSpec& spec);
#endif

}  // namespace ssa::attention
