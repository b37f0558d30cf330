#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "ssa/compat/kernel_arguments.h"
#include "ssa/model/swiglu.h"
#include "ssa/util/error.h"
#include "swiglu.h"

namespace ssa::model {
namespace {

using compat::bf16_data;
using compat::contiguous_aligned;

// Saves gate and up (eager LibTorch also keeps silu(gate)).
struct SwigluFunction : public torch::autograd::Function<SwigluFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& gate,
                               const torch::Tensor& up) {
    const c10::cuda::CUDAGuard guard(gate.device());
    const auto g = contiguous_aligned(gate), u = contiguous_aligned(up);
    auto y = torch::empty_like(g);
    kernels::swiglu_forward(bf16_data(g), bf16_data(u), bf16_data(y), g.numel(),
                            at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({g, u});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &g = saved[0], &u = saved[1];
    const c10::cuda::CUDAGuard guard(g.device());
    const auto grad_y = contiguous_aligned(grads[0]);
    auto grad_gate = torch::empty_like(g), grad_up = torch::empty_like(u);
    kernels::swiglu_backward(bf16_data(g), bf16_data(u), bf16_data(grad_y), bf16_data(grad_gate),
                             bf16_data(grad_up), g.numel(), at::cuda::getCurrentCUDAStream().stream());
    return {grad_gate, grad_up};
  }
};

}  // namespace

bool swiglu_cuda_supports(const torch::Tensor& gate, const torch::Tensor& up) {
  return gate.is_cuda() && gate.scalar_type() == torch::kBFloat16 && up.scalar_type() == torch::kBFloat16 &&
         up.device() == gate.device() && up.sizes().equals(gate.sizes());
}

torch::Tensor swiglu_cuda(const torch::Tensor& gate, const torch::Tensor& up) {
  if (!swiglu_cuda_supports(gate, up)) {
    throw UsageError("swiglu (CUDA): gate and up must be CUDA bf16 tensors of one shape on one device");
  }
  return SwigluFunction::apply(gate, up);
}

}  // namespace ssa::model
