#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "alignment_loss.h"
#include "ssa/attention/alignment_loss.h"
#include "ssa/compat/kernel_arguments.h"
#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

using compat::bf16_data;
using compat::contiguous_aligned;

kernels::AlignmentLossShape kernel_shape(const torch::Tensor& o, bool smooth_l1, double beta) {
  kernels::AlignmentLossShape shape;
  shape.count = o.numel();
  shape.smooth_l1 = smooth_l1;
  shape.beta = static_cast<float>(beta);
  return shape;
}

// Saves both outputs; a direction with weight 0 sends no gradient (as the reference's detach).
struct AlignmentLossFunction : public torch::autograd::Function<AlignmentLossFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& o_full,
                               const torch::Tensor& o_sparse, bool smooth_l1, double beta, double sparsity_weight,
                               double commitment_weight) {
    const c10::cuda::CUDAGuard guard(o_full.device());
    const auto full = contiguous_aligned(o_full), sparse = contiguous_aligned(o_sparse);
    const auto shape = kernel_shape(full, smooth_l1, beta);
    auto loss = torch::empty({}, full.options().dtype(torch::kFloat32));
    auto workspace = torch::empty({static_cast<int64_t>(kernels::alignment_loss_forward_workspace_bytes(shape))},
                                  full.options().dtype(torch::kUInt8));
    const double n = static_cast<double>(std::max<int64_t>(1, shape.count));
    kernels::alignment_loss_forward(bf16_data(full), bf16_data(sparse), loss.data_ptr<float>(),
                                    static_cast<float>((sparsity_weight + commitment_weight) / n),
                                    workspace.data_ptr(), shape, at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({full, sparse});
    ctx->saved_data["smooth_l1"] = smooth_l1;
    ctx->saved_data["beta"] = beta;
    ctx->saved_data["full_scale"] = sparsity_weight / n;
    ctx->saved_data["sparse_scale"] = commitment_weight / n;
    return loss;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &full = saved[0], &sparse = saved[1];
    const c10::cuda::CUDAGuard guard(full.device());
    const double full_scale = ctx->saved_data["full_scale"].toDouble();
    const double sparse_scale = ctx->saved_data["sparse_scale"].toDouble();
    const auto grad_loss = grads[0].to(torch::kFloat32).contiguous();
    torch::Tensor grad_full, grad_sparse;
    if (full_scale != 0) grad_full = torch::empty_like(full);
    if (sparse_scale != 0) grad_sparse = torch::empty_like(sparse);
    kernels::alignment_loss_backward(
        bf16_data(full), bf16_data(sparse), grad_loss.data_ptr<float>(), static_cast<float>(full_scale),
        static_cast<float>(sparse_scale), grad_full.defined() ? bf16_data(grad_full) : nullptr,
        grad_sparse.defined() ? bf16_data(grad_sparse) : nullptr,
        kernel_shape(full, ctx->saved_data["smooth_l1"].toBool(), ctx->saved_data["beta"].toDouble()),
        at::cuda::getCurrentCUDAStream().stream());
    return {grad_full, grad_sparse, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool alignment_loss_cuda_supports(const torch::Tensor& o_full, const torch::Tensor& o_sparse) {
  return o_full.is_cuda() && o_full.scalar_type() == torch::kBFloat16 && o_sparse.scalar_type() == torch::kBFloat16 &&
         o_sparse.device() == o_full.device() && o_sparse.sizes().equals(o_full.sizes());
}

torch::Tensor alignment_loss_cuda(const torch::Tensor& o_full, const torch::Tensor& o_sparse, const AlignSpec& spec) {
  if (!alignment_loss_cuda_supports(o_full, o_sparse)) {
    throw UsageError("alignment loss (CUDA): the outputs must be CUDA bf16 tensors of one shape on one device");
  }
  return AlignmentLossFunction::apply(o_full, o_sparse, spec.smooth_l1, spec.beta, spec.sparsity_weight,
                                      spec.commitment_weight);
}

}  // namespace ssa::attention
