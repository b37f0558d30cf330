#include "ssa/model/output_gate.h"

namespace ssa::model {

torch::Tensor output_gate(const torch::Tensor& o, const torch::Tensor& g, bool fused) {
#if SSA_HAVE_CUDA_KERNELS
  if (fused && output_gate_cuda_supports(o, g)) return output_gate_cuda(o, g);
#endif
  return output_gate_reference(o, g);
}

torch::Tensor output_gate_reference(const torch::Tensor& o, const torch::Tensor& g) {
  const auto gate = torch::sigmoid(g);
  return o * (g.dim() == o.dim() ? gate : gate.unsqueeze(-1));
}

}  // namespace ssa::model
