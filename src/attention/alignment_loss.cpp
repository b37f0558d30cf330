#include "ssa/attention/alignment_loss.h"

#include "ssa/util/error.h"

namespace ssa::attention {

AlignSpec align_spec(const config::SsaAlignConfig& config) {
  AlignSpec spec;
  if (config.loss == "smooth_l1") {
    spec.smooth_l1 = true;
  } else if (config.loss == "l2") {
    spec.smooth_l1 = false;
  } else {
    throw ConfigError("ssa.align.loss '" + config.loss + "' is not one of smooth_l1 | l2");
  }
  if (!(config.beta > 0)) throw ConfigError("ssa.align.beta must be positive, got " + std::to_string(config.beta));
  spec.beta = config.beta;
  const std::string& d = config.directions;
  if (d != "both" && d != "sparsity" && d != "commitment" && d != "none") {
    throw ConfigError("ssa.align.directions '" + d + "' is not one of both | sparsity | commitment | none");
  }
  spec.sparsity_weight = (d == "both" || d == "sparsity") ? 1.0 : 0.0;
  spec.commitment_weight = (d == "both" || d == "commitment") ? 1.0 : 0.0;
  return spec;
}

torch::Tensor alignment_loss(const torch::Tensor& o_full, const torch::Tensor& o_sparse, const AlignSpec& spec,
                             bool fused) {
  // Outputs of different shapes never take the kernel path: the reference rejects them.
#if SSA_HAVE_CUDA_KERNELS
  const bool any_direction = spec.sparsity_weight != 0 || spec.commitment_weight != 0;
  if (fused && any_direction && alignment_loss_cuda_supports(o_full, o_sparse)) {
    return alignment_loss_cuda(o_full, o_sparse, spec);
  }
#endif
  return alignment_loss_reference(o_full, o_sparse, spec);
}

torch::Tensor alignment_loss_reference(const torch::Tensor& o_full, const torch::Tensor& o_sparse,
                                       const AlignSpec& spec) {
  if (!o_full.sizes().equals(o_sparse.sizes())) {
    throw UsageError("alignment loss: the full and sparse outputs differ in shape");
  }
  auto distance = [&](const torch::Tensor& input, const torch::Tensor& target) {
    return spec.smooth_l1 ? torch::smooth_l1_loss(input, target, at::Reduction::Mean, spec.beta)
                          : torch::mse_loss(input, target, at::Reduction::Mean);
  };
  // A direction with weight 0 is left out of the graph entirely, so it sends no gradient at all.
  torch::Tensor loss = torch::zeros({}, o_full.options().requires_grad(false));
  if (spec.sparsity_weight != 0) loss = loss + spec.sparsity_weight * distance(o_full, o_sparse.detach());
  if (spec.commitment_weight != 0) loss = loss + spec.commitment_weight * distance(o_full.detach(), o_sparse);
  return loss;
}

}  // namespace ssa::attention
