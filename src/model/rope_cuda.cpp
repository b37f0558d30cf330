#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "rope.h"
#include "ssa/compat/kernel_arguments.h"
#include "ssa/model/rope.h"
#include "ssa/util/error.h"

namespace ssa::model {
namespace {

using compat::bf16_data;
using compat::contiguous_aligned;

kernels::RopeShape rope_shape(const torch::Tensor& x) {
  kernels::RopeShape s;
  s.batch = x.size(0);
  s.length = x.size(1);
  s.heads = x.size(2);
  s.head_dim = x.size(3);
  return s;
}

torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, bool backward) {
  const c10::cuda::CUDAGuard guard(x.device());
  const auto xc = contiguous_aligned(x);
  auto y = torch::empty_like(xc);
  kernels::rope_apply(bf16_data(xc), cos.data_ptr<float>(), sin.data_ptr<float>(), bf16_data(y), rope_shape(xc),
                      backward, at::cuda::getCurrentCUDAStream().stream());
  return y;
}

// Saves the tables only: the rotation is linear in x.
struct RopeFunction : public torch::autograd::Function<RopeFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos, const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return rotate(x, cos, sin, false);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {rotate(grads[0], saved[0], saved[1], true), torch::Tensor(), torch::Tensor()};
  }
};

bool table_fits(const torch::Tensor& table, const torch::Tensor& x) {
  return table.defined() && table.device() == x.device() && table.scalar_type() == torch::kFloat32 &&
         table.dim() == 3 && table.size(0) == x.size(0) && table.size(1) == x.size(1) && table.size(2) == x.size(3);
}

}  // namespace

bool apply_rope_cuda_supports(const torch::Tensor& x, const RopeTables& tables) {
  return x.is_cuda() && x.scalar_type() == torch::kBFloat16 && x.dim() == 4 && x.size(3) > 0 && x.size(3) % 8 == 0 &&
         table_fits(tables.cos, x) && table_fits(tables.sin, x);
}

torch::Tensor apply_rope_cuda(const torch::Tensor& x, const RopeTables& tables) {
  if (!apply_rope_cuda_supports(x, tables)) {
    throw UsageError("rope (CUDA): x must be a CUDA bf16 [B, T, H, D] tensor with D a multiple of 8 and the tables "
                     "float32 [B, T, D] on its device");
  }
  return RopeFunction::apply(x, contiguous_aligned(tables.cos), contiguous_aligned(tables.sin));
}

}  // namespace ssa::model
