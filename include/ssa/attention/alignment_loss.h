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

torch::Tensor alignment_loss(const torch::Tensor& o_full, const torch::Tensor& o_sparse, const AlignSpec& spec);

}  // namespace ssa::attention
