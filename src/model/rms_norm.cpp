#include "ssa/model/rms_norm.h"

namespace ssa::model {

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, bool fused) {
#if SSA_HAVE_CUDA_KERNELS
  if (fused && rms_norm_cuda_supports(x, weight)) return rms_norm_cuda(x, weight, eps);
#endif
  return rms_norm_reference(x, weight, eps);
}

torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto h = x.to(torch::kFloat32);
  h = h * torch::rsqrt(h.pow(2).mean(-1, true) + eps);
  return weight * h.to(x.scalar_type());
}

}  // namespace ssa::model
