#include "ssa/train/adamw.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "ssa/util/error.h"

namespace ssa::train {

AdamWOptions adamw_options(const config::OptimConfig& optim) {
  return {optim.beta1, optim.beta2, optim.eps, optim.weight_decay, optim.fused};
}

bool takes_weight_decay(const std::string& name, const torch::Tensor& parameter, bool embedding_weight_decay) {
  if (parameter.dim() < 2) return false;
  const bool embedding = name.find("embed_tokens") != std::string::npos || name.find("lm_head") != std::string::npos;
  return !embedding || embedding_weight_decay;
}

AdamW::AdamW(model::NamedTensors parameters, std::vector<bool> decay, AdamWOptions options)
    : parameters_(std::move(parameters)), decay_(std::move(decay)), options_(options) {
  if (decay_.size() != parameters_.size()) throw std::invalid_argument("AdamW: one decay flag per parameter");
  for (const auto& [name, p] : parameters_) {
    exp_avg_.push_back(torch::zeros_like(p));
    exp_avg_sq_.push_back(torch::zeros_like(p));
  }
#if SSA_HAVE_CUDA_KERNELS
  fused_ = options_.fused && !parameters_.empty();
  for (const auto& [name, p] : parameters_) {
    fused_ = fused_ && p.is_cuda() && p.scalar_type() == torch::kFloat32 && p.is_contiguous() &&
             p.device() == parameters_.front().second.device();
  }
#endif
}

void AdamW::step(double lr, const std::vector<torch::Tensor>& grads, double grad_scale,
                 const std::vector<torch::Tensor>& compute_copies) {
  torch::NoGradGuard no_grad;
  if (grads.size() != parameters_.size()) throw std::invalid_argument("AdamW::step: one gradient per parameter");
  if (!compute_copies.empty() && compute_copies.size() != parameters_.size()) {
    throw std::invalid_argument("AdamW::step: one compute copy per parameter, or none");
  }
  ++steps_;
  const double t = static_cast<double>(steps_);
  const AdamWStepScalars s{options_.beta1,
                           options_.beta2,
                           options_.eps,
                           1.0 - lr * options_.weight_decay,
                           lr / (1.0 - std::pow(options_.beta1, t)),
                           std::sqrt(1.0 - std::pow(options_.beta2, t)),
                           grad_scale};
#if SSA_HAVE_CUDA_KERNELS
  if (fused_) {
    adamw_update_cuda(parameters_, grads, exp_avg_, exp_avg_sq_, compute_copies, decay_, s);
    return;
  }
#endif
  unfused_step(s, grads, compute_copies);
}

void AdamW::unfused_step(const AdamWStepScalars& s, const std::vector<torch::Tensor>& grads,
                         const std::vector<torch::Tensor>& compute_copies) {
  for (size_t i = 0; i < parameters_.size(); ++i) {
    auto& p = parameters_[i].second;
    const torch::Tensor g32 = grads[i].to(p.scalar_type());
    const torch::Tensor g = s.grad_scale == 1.0 ? g32 : g32 * s.grad_scale;
    if (decay_[i] && options_.weight_decay != 0.0) p.mul_(s.decay_factor);
    exp_avg_[i].mul_(s.beta1).add_(g, 1.0 - s.beta1);
    exp_avg_sq_[i].mul_(s.beta2).addcmul_(g, g, 1.0 - s.beta2);
    const auto denom = (exp_avg_sq_[i].sqrt() / s.bias2_sqrt).add_(s.eps);
    p.addcdiv_(exp_avg_[i], denom, -s.step_size);
    if (!compute_copies.empty()) compute_copies[i].copy_(p);
  }
}

model::NamedTensors AdamW::state_tensors() const {
  model::NamedTensors out;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    // Copies, also on the CPU: the caller keeps a snapshot while training goes on.
    out.emplace_back("exp_avg." + parameters_[i].first, exp_avg_[i].detach().to(torch::kCPU, false, true));
    out.emplace_back("exp_avg_sq." + parameters_[i].first, exp_avg_sq_[i].detach().to(torch::kCPU, false, true));
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t steps, const std::string& origin) {
  torch::NoGradGuard no_grad;
  const auto restore = [&](const std::string& key, torch::Tensor& into) {
    auto it = tensors.find(key);
    if (it == tensors.end()) throw FormatError(fmt::format("{}: optimizer state '{}' is missing", origin, key));
    if (it->second.sizes() != into.sizes() || it->second.scalar_type() != into.scalar_type()) {
      throw FormatError(fmt::format("{}: optimizer state '{}' has shape {} ({}), expected {} ({})", origin, key,
                                    fmt::join(it->second.sizes(), "x"), c10::toString(it->second.scalar_type()),
                                    fmt::join(into.sizes(), "x"), c10::toString(into.scalar_type())));
    }
    into.copy_(it->second);
  };
  for (size_t i = 0; i < parameters_.size(); ++i) {
    restore("exp_avg." + parameters_[i].first, exp_avg_[i]);
    restore("exp_avg_sq." + parameters_[i].first, exp_avg_sq_[i]);
  }
  const size_t expected = 2 * parameters_.size();
  if (tensors.size() != expected) {
    throw FormatError(fmt::format("{}: {} optimizer state tensors, expected {} (another model?)", origin,
                                  tensors.size(), expected));
  }
  steps_ = steps;
}

}  // namespace ssa::train
