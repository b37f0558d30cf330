#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <stdexcept>

#include "adamw.h"
#include "ssa/compat/kernel_arguments.h"
#include "ssa/train/adamw.h"

namespace ssa::train {

void adamw_update_cuda(const model::NamedTensors& parameters, const std::vector<torch::Tensor>& grads,
                       const std::vector<torch::Tensor>& exp_avg, const std::vector<torch::Tensor>& exp_avg_sq,
                       const std::vector<torch::Tensor>& compute_copies, const std::vector<bool>& decay,
                       const AdamWStepScalars& scalars) {
  if (parameters.empty()) return;
  const auto device = parameters.front().second.device();
  const c10::cuda::CUDAGuard guard(device);
  const auto stream = at::cuda::getCurrentCUDAStream().stream();

  // Converted gradients stay alive until the launches are queued; the caching allocator reuses
  // their memory only for work queued after them on this stream.
  std::vector<torch::Tensor> converted;
  std::vector<size_t> copied_after;  // copies the kernel cannot write
  std::vector<kernels::AdamWTensor> tensors(parameters.size());
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto& p = parameters[i].second;
    torch::Tensor g = grads[i];
    if (g.sizes() != p.sizes()) throw std::invalid_argument("AdamW: gradient " + parameters[i].first + " has another shape");
    const bool usable = g.device() == device && g.is_contiguous() &&
                        (g.scalar_type() == torch::kFloat32 || g.scalar_type() == torch::kBFloat16);
    if (!usable) {
      converted.push_back(g.to(device, torch::kFloat32).contiguous());
      g = converted.back();
    }
    auto& t = tensors[i];
    t.param = p.data_ptr<float>();
    t.exp_avg = exp_avg[i].data_ptr<float>();
    t.exp_avg_sq = exp_avg_sq[i].data_ptr<float>();
    t.grad = g.data_ptr();
    t.grad_bf16 = g.scalar_type() == torch::kBFloat16;
    t.decays = decay[i];
    t.numel = p.numel();
    if (!compute_copies.empty()) {
      auto copy = compute_copies[i];
      if (copy.scalar_type() == torch::kBFloat16 && copy.is_contiguous() && copy.device() == device &&
          copy.numel() == p.numel()) {
        t.compute_copy = compat::bf16_data(copy);
      } else {
        copied_after.push_back(i);
      }
    }
  }
  const kernels::AdamWScalars s{static_cast<float>(scalars.beta1),
                                static_cast<float>(1.0 - scalars.beta1),
                                static_cast<float>(scalars.beta2),
                                static_cast<float>(1.0 - scalars.beta2),
                                static_cast<float>(scalars.eps),
                                static_cast<float>(scalars.decay_factor),
                                static_cast<float>(scalars.step_size),
                                static_cast<float>(scalars.bias2_sqrt),
                                static_cast<float>(scalars.grad_scale)};
  kernels::adamw_update(tensors.data(), static_cast<int64_t>(tensors.size()), s, stream);
  for (const size_t i : copied_after) compute_copies[i].copy_(parameters[i].second);
}

}  // namespace ssa::train
