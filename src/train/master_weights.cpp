#include "ssa/train/master_weights.h"

#include <fmt/format.h>

#include "ssa/util/error.h"

namespace ssa::train {

MasterWeights::MasterWeights(model::LlamaForCausalLM& model, torch::ScalarType compute_dtype)
    : model_(model) {
  torch::NoGradGuard no_grad;
  const bool separate = compute_dtype != torch::kFloat32;
  for (auto& item : model->named_parameters()) {
    torch::Tensor master = item.value().detach().to(torch::kFloat32, false, /*copy=*/true);
    if (!separate) master = item.value();
    masters_.emplace_back(item.key(), master);
  }
  if (separate) model->to(compute_dtype);
  for (auto& p : model->parameters()) {
    model_parameters_.push_back(p);
    if (separate) gradient_sums_.push_back(torch::zeros(p.sizes(), p.options().dtype(torch::kFloat32)));
  }
}

void MasterWeights::accumulate() {
  if (gradient_sums_.empty()) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < model_parameters_.size(); ++i) {
    auto& grad = model_parameters_[i].mutable_grad();
    if (!grad.defined()) continue;
    gradient_sums_[i].add_(grad);  // fp32 += bf16 in one pass, no fp32 copy of the gradient
    grad = torch::Tensor();
  }
}

std::vector<torch::Tensor> MasterWeights::gradients() {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < model_parameters_.size(); ++i) {
    if (!gradient_sums_.empty()) {
      out.push_back(gradient_sums_[i]);
      continue;
    }
    auto& grad = model_parameters_[i].mutable_grad();
    if (!grad.defined()) grad = torch::zeros_like(model_parameters_[i]);
    out.push_back(grad);
  }
  return out;
}

void MasterWeights::discard_gradient_sums() {
  for (auto& sum : gradient_sums_) sum = torch::Tensor();
}

torch::Tensor MasterWeights::accumulated_gradient(size_t i) const {
  return gradient_sums_.empty() ? model_parameters_[i].grad() : gradient_sums_[i];
}

void MasterWeights::zero_gradients() {
  torch::NoGradGuard no_grad;
  for (auto& p : model_parameters_) p.mutable_grad() = torch::Tensor();
  for (auto& sum : gradient_sums_) {
    if (sum.defined()) sum.zero_();
  }
}

void MasterWeights::publish() {
  if (gradient_sums_.empty()) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < model_parameters_.size(); ++i) model_parameters_[i].copy_(masters_[i].second);
}

void MasterWeights::load(const std::map<std::string, torch::Tensor>& tensors, const std::string& origin) {
  torch::NoGradGuard no_grad;
  for (auto& [name, master] : masters_) {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw FormatError(fmt::format("{}: weight '{}' is missing", origin, name));
    if (it->second.sizes() != master.sizes()) {
      throw FormatError(fmt::format("{}: weight '{}' has shape {}, the model needs {}", origin, name,
                                    fmt::join(it->second.sizes(), "x"), fmt::join(master.sizes(), "x")));
    }
    master.copy_(it->second.to(torch::kFloat32));
  }
  if (!gradient_sums_.empty()) publish();
}

}  // namespace ssa::train
