#include "ssa/train/linear_cross_entropy.h"

#include <c10/util/StringUtil.h>

#include <stdexcept>

namespace ssa::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One chunk on the ATen path: adds the chunk's loss to `loss` and returns d(loss)/d(logits) in
// the hidden states' dtype (undefined unless `want_gradient`).
torch::Tensor aten_loss_and_gradient(const torch::Tensor& h, const torch::Tensor& weight, const torch::Tensor& t,
                                     int64_t ignore_index, bool want_gradient, torch::Tensor& loss) {
  auto logits = torch::matmul(h, weight.t()).to(torch::kFloat32);
  const auto lse = torch::logsumexp(logits, 1);
  const auto valid = t.ne(ignore_index);
  const auto safe_targets = t.masked_fill(valid.logical_not(), 0).unsqueeze(1);
  const auto picked = logits.gather(1, safe_targets).squeeze(1);
  loss += (lse - picked).masked_fill(valid.logical_not(), 0).sum();
  if (!want_gradient) return {};
  // d(loss)/d(logits) = softmax - one-hot on the rows in the loss, 0 on the others.
  const auto keep = valid.to(torch::kFloat32).unsqueeze(1);
  logits.sub_(lse.unsqueeze(1)).exp_();
  logits.scatter_add_(1, safe_targets, keep.neg());
  logits.mul_(keep);
  return logits.to(h.scalar_type());
}

struct LinearCrossEntropy : torch::autograd::Function<LinearCrossEntropy> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& hidden, const torch::Tensor& weight,
                               const torch::Tensor& targets, int64_t ignore_index, int64_t chunk_rows,
                               bool hidden_grad, bool weight_grad, bool kernel) {
    const int64_t width = hidden.size(-1);
    const auto rows = hidden.reshape({-1, width});
    const auto row_targets = targets.reshape({-1});
    auto loss = torch::zeros({}, hidden.options().dtype(torch::kFloat32));
    torch::Tensor hidden_gradient, weight_gradient;
    if (hidden_grad) hidden_gradient = torch::empty(rows.sizes(), rows.options().dtype(torch::kFloat32));
    const bool want_gradient = hidden_grad || weight_grad;
    for (int64_t r0 = 0; r0 < rows.size(0); r0 += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows.size(0) - r0);
      const auto h = rows.narrow(0, r0, n);
      const auto t = row_targets.narrow(0, r0, n);
      // The logits' gradient (softmax - one-hot) in the hidden states' dtype.
      torch::Tensor grad_logits;
#if SSA_HAVE_CUDA_KERNELS
      if (kernel) {
        grad_logits = torch::matmul(h, weight.t());
        loss += cross_entropy_rows_cuda(grad_logits, t, ignore_index, want_gradient).sum();
      }
#endif
      if (!kernel) {
        grad_logits = aten_loss_and_gradient(h, weight, t, ignore_index, want_gradient, loss);
      }
      if (!want_gradient) continue;
      if (hidden_grad) hidden_gradient.narrow(0, r0, n).copy_(torch::matmul(grad_logits, weight));
      if (weight_grad) {
        const auto chunk_gradient = torch::matmul(grad_logits.t(), h);
        if (weight_gradient.defined()) {
          weight_gradient.add_(chunk_gradient);
        } else {
          weight_gradient = chunk_gradient.to(torch::kFloat32);
        }
      }
    }
    ctx->saved_data["hidden_gradient"] = hidden_gradient;
    ctx->saved_data["weight_gradient"] = weight_gradient;
    ctx->saved_data["hidden_sizes"] = hidden.sizes().vec();
    ctx->saved_data["dtype"] = weight.scalar_type();
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto& g = grad_outputs[0];
    torch::Tensor hidden_gradient = ctx->saved_data["hidden_gradient"].toTensor();
    torch::Tensor weight_gradient = ctx->saved_data["weight_gradient"].toTensor();
    // Both stored in fp32 and scaled in fp32, as the unfused loss scales its fp32 logits' gradient.
    const auto dtype = ctx->saved_data["dtype"].toScalarType();
    if (hidden_gradient.defined()) {
      hidden_gradient = (hidden_gradient * g).to(dtype).view(ctx->saved_data["hidden_sizes"].toIntVector());
    }
    if (weight_gradient.defined()) weight_gradient = (weight_gradient * g).to(dtype);
    return {hidden_gradient, weight_gradient, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool linear_cross_entropy_uses_kernel(const torch::Tensor& hidden, const torch::Tensor& weight, bool fused) {
#if SSA_HAVE_CUDA_KERNELS
  return fused && hidden.is_cuda() && hidden.scalar_type() == torch::kBFloat16 && weight.device() == hidden.device();
#else
  return false;
#endif
}

torch::Tensor linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, int64_t ignore_index, int64_t chunk_rows,
                                       bool fused) {
  if (chunk_rows < 0) throw std::invalid_argument("linear_cross_entropy_sum: chunk_rows must not be negative");
  if (weight.dim() != 2 || hidden.size(-1) != weight.size(1) || hidden.scalar_type() != weight.scalar_type()) {
    throw std::invalid_argument(c10::str("linear_cross_entropy_sum: hidden ", hidden.sizes(), " (", hidden.scalar_type(),
                                         ") does not fit weight ", weight.sizes(), " (", weight.scalar_type(), ")"));
  }
  if (targets.numel() * hidden.size(-1) != hidden.numel()) {
    throw std::invalid_argument(
        c10::str("linear_cross_entropy_sum: targets ", targets.sizes(), " for hidden ", hidden.sizes()));
  }
  const bool kernel = linear_cross_entropy_uses_kernel(hidden, weight, fused);
  if (chunk_rows == 0) chunk_rows = kernel ? kKernelLogitsChunk : kLogitsChunk;
  const bool grad = torch::GradMode::is_enabled();
  return LinearCrossEntropy::apply(hidden, weight, targets, ignore_index, chunk_rows, grad && hidden.requires_grad(),
                                   grad && weight.requires_grad(), kernel);
}

}  // namespace ssa::train
