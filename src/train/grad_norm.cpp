#include "ssa/train/grad_norm.h"

namespace ssa::train {

double global_grad_norm(const std::vector<torch::Tensor>& grads) {
  if (grads.empty()) return 0.0;
  return gradient_norms(grads).norm().item<double>();
}

torch::Tensor gradient_norms(const std::vector<torch::Tensor>& grads) {
  std::vector<torch::Tensor> norms;
  norms.reserve(grads.size());
  // Accumulated in fp32 from bf16 gradients as they are, without an fp32 copy of them.
  for (const auto& g : grads) norms.push_back(at::linalg_vector_norm(g, 2, {}, false, torch::kFloat32));
  return torch::stack(norms);
}

double clip_factor(double norm, double max_norm) {
  if (max_norm <= 0.0 || !(norm > max_norm)) return 1.0;
  return max_norm / norm;
}

}  // namespace ssa::train
