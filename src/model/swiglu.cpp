#include "ssa/model/swiglu.h"

namespace ssa::model {

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up, bool fused) {
#if SSA_HAVE_CUDA_KERNELS
  if (fused && swiglu_cuda_supports(gate, up)) return swiglu_cuda(gate, up);
#endif
  return swiglu_reference(gate, up);
}

torch::Tensor swiglu_reference(const torch::Tensor& gate, const torch::Tensor& up) { return torch::silu(gate) * up; }

}  // namespace ssa::model
