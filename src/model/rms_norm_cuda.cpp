#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "rms_norm.h"
#include "ssa/compat/kernel_arguments.h"
#include "ssa/model/rms_norm.h"
#include "ssa/util/error.h"

namespace ssa::model {
namespace {

using compat::bf16_data;
using compat::contiguous_aligned;

// Saves x, the weight and the float32 1/rms of every row.
struct RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps) {
    const c10::cuda::CUDAGuard guard(x.device());
    const auto xc = contiguous_aligned(x), wc = contiguous_aligned(weight);
    const int64_t dim = x.size(-1), rows = x.numel() / dim;
    auto y = torch::empty_like(xc);
    auto rstd = torch::empty({rows}, xc.options().dtype(torch::kFloat32));
    kernels::rms_norm_forward(bf16_data(xc), bf16_data(wc), bf16_data(y), rstd.data_ptr<float>(), rows, dim,
                              static_cast<float>(eps), at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({xc, wc, rstd});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &rstd = saved[2];
    const c10::cuda::CUDAGuard guard(x.device());
    const auto grad_y = contiguous_aligned(grads[0]);
    const int64_t dim = x.size(-1), rows = x.numel() / dim;
    auto dx = torch::empty_like(x);
    auto dweight = torch::empty_like(weight);
    auto workspace = torch::empty({static_cast<int64_t>(kernels::rms_norm_backward_workspace_bytes(rows, dim))},
                                  x.options().dtype(torch::kUInt8));
    kernels::rms_norm_backward(bf16_data(x), bf16_data(weight), rstd.data_ptr<float>(), bf16_data(grad_y),
                               bf16_data(dx), bf16_data(dweight), workspace.data_ptr(), rows, dim,
                               at::cuda::getCurrentCUDAStream().stream());
    return {dx, dweight, torch::Tensor()};
  }
};

}  // namespace

bool rms_norm_cuda_supports(const torch::Tensor& x, const torch::Tensor& weight) {
  if (!x.is_cuda() || x.scalar_type() != torch::kBFloat16 || x.dim() < 1) return false;
  if (!weight.is_cuda() || weight.scalar_type() != torch::kBFloat16 || weight.device() != x.device()) return false;
  const int64_t dim = x.size(-1);
  return weight.dim() == 1 && weight.size(0) == dim && dim > 0 && dim <= kernels::kRmsNormMaxDim && dim % 8 == 0;
}

torch::Tensor rms_norm_cuda(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  if (!rms_norm_cuda_supports(x, weight)) {
    throw UsageError("rms_norm (CUDA): x and weight must be CUDA bf16 tensors on one device, weight [dim] with "
                     "dim a multiple of 8 of at most 8192");
  }
  return RmsNormFunction::apply(x, weight, eps);
}

}  // namespace ssa::model
