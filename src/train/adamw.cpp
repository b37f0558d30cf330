#include "ssa/train/adamw.h"

#include <cmath>
#include <optional>
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
#if SSA_TORCH_AT_LEAST(2, 0)
  // The fused kernel wants float32 tensors on one CUDA device (it runs on the CPU from 2.4 only).
  fused_ = options_.fused && !parameters_.empty();
  for (const auto& [name, p] : parameters_) {
    fused_ = fused_ && p.is_cuda() && p.scalar_type() == torch::kFloat32 &&
             p.device() == parameters_.front().second.device();
  }
  if (fused_) {
    step_counts_ = torch::zeros({static_cast<int64_t>(parameters_.size())}, parameters_.front().second.options());
  }
#endif
}

void AdamW::step(double lr, const std::vector<torch::Tensor>& grads, double grad_scale) {
  torch::NoGradGuard no_grad;
  if (grads.size() != parameters_.size()) throw std::invalid_argument("AdamW::step: one gradient per parameter");
  ++steps_;
  if (fused_) {
    fused_step(lr, grads, grad_scale);
  } else {
    unfused_step(lr, grads, grad_scale);
  }
}

void AdamW::fused_step(double lr, const std::vector<torch::Tensor>& grads, double grad_scale) {
#if SSA_TORCH_AT_LEAST(2, 0)
  step_counts_.fill_(static_cast<double>(steps_));
  const auto counts = step_counts_.unbind();
  // The kernel divides the gradients by grad_scale (AMP's unscaling); clipping multiplies.
  std::optional<torch::Tensor> divide_by;
  if (grad_scale != 1.0) divide_by = torch::full({}, 1.0 / grad_scale, step_counts_.options());
  // One call per weight decay: the kernel takes one value for all its tensors.
  for (const bool decays : {true, false}) {
    std::vector<torch::Tensor> p, g, m, v, t;
    for (size_t i = 0; i < parameters_.size(); ++i) {
      if (decay_[i] != decays) continue;
      p.push_back(parameters_[i].second);
      g.push_back(grads[i]);
      m.push_back(exp_avg_[i]);
      v.push_back(exp_avg_sq_[i]);
      t.push_back(counts[i]);
    }
    if (p.empty()) continue;
    at::_fused_adamw_(p, g, m, v, /*max_exp_avg_sqs=*/{}, t, lr, options_.beta1, options_.beta2,
                      decays ? options_.weight_decay : 0.0, options_.eps, /*amsgrad=*/false, /*maximize=*/false,
                      divide_by, /*found_inf=*/std::nullopt);
  }
#else
  throw std::logic_error("AdamW: the fused kernel needs LibTorch 2.x");
#endif
}

void AdamW::unfused_step(double lr, const std::vector<torch::Tensor>& grads, double grad_scale) {
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(b2, static_cast<double>(steps_)));
  for (size_t i = 0; i < parameters_.size(); ++i) {
    auto& p = parameters_[i].second;
    const torch::Tensor g = grad_scale == 1.0 ? grads[i] : grads[i] * grad_scale;
    if (decay_[i] && options_.weight_decay != 0.0) p.mul_(1.0 - lr * options_.weight_decay);
    exp_avg_[i].mul_(b1).add_(g, 1.0 - b1);
    exp_avg_sq_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    const auto denom = (exp_avg_sq_[i].sqrt() / bias2_sqrt).add_(options_.eps);
    p.addcdiv_(exp_avg_[i], denom, -lr / bias1);
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
