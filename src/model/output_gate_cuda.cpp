#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "output_gate.h"
#include "ssa/compat/kernel_arguments.h"
#include "ssa/model/output_gate.h"
#include "ssa/util/error.h"

namespace ssa::model {
namespace {

using compat::bf16_data;
using compat::contiguous_aligned;

kernels::OutputGateShape shape_of(const torch::Tensor& o, const torch::Tensor& g) {
  kernels::OutputGateShape shape;
  shape.head_dim = o.size(-1);
  shape.rows = o.numel() / shape.head_dim;
  shape.elementwise = g.dim() == o.dim();
  return shape;
}

// Saves o and g (eager LibTorch also keeps sigmoid(g)).
struct OutputGateFunction : public torch::autograd::Function<OutputGateFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& o_in,
                               const torch::Tensor& g_in) {
    const c10::cuda::CUDAGuard guard(o_in.device());
    const auto o = contiguous_aligned(o_in), g = contiguous_aligned(g_in);
    auto y = torch::empty_like(o);
    kernels::output_gate_forward(bf16_data(o), bf16_data(g), bf16_data(y), shape_of(o, g),
                                 at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({o, g});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &o = saved[0], &g = saved[1];
    const c10::cuda::CUDAGuard guard(o.device());
    const auto grad_y = contiguous_aligned(grads[0]);
    auto grad_o = torch::empty_like(o), grad_g = torch::empty_like(g);
    kernels::output_gate_backward(bf16_data(o), bf16_data(g), bf16_data(grad_y), bf16_data(grad_o),
                                  bf16_data(grad_g), shape_of(o, g), at::cuda::getCurrentCUDAStream().stream());
    return {grad_o, grad_g};
  }
};

}  // namespace

bool output_gate_cuda_supports(const torch::Tensor& o, const torch::Tensor& g) {
  if (!o.is_cuda() || o.scalar_type() != torch::kBFloat16 || g.scalar_type() != torch::kBFloat16 ||
      g.device() != o.device() || o.dim() < 1 || o.size(-1) < 1) {
    return false;
  }
  const bool elementwise = g.sizes().equals(o.sizes());
  const bool headwise = g.dim() == o.dim() - 1 && g.sizes().equals(o.sizes().slice(0, o.dim() - 1));
  return (elementwise || headwise) && kernels::output_gate_supports(shape_of(o, g));
}

torch::Tensor output_gate_cuda(const torch::Tensor& o, const torch::Tensor& g) {
  if (!output_gate_cuda_supports(o, g)) {
    throw UsageError("output_gate (CUDA): o and g must be CUDA bf16 tensors on one device, g of o's shape or of o's "
                     "shape without its last dimension, and a head dimension of 8 x a power of two up to 256");
  }
  return OutputGateFunction::apply(o, g);
}

}  // namespace ssa::model
