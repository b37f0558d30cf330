#include "ssa/train/master_weights.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "ssa/util/error.h"

namespace ssa::train {

MasterWeights::MasterWeights(model::LlamaForCausalLM& model, torch::ScalarType compute_dtype)
    : model_(model), separate_(compute_dtype != torch::kFloat32) {
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    torch::Tensor master = item.value().detach().to(torch::kFloat32, false, /*copy=*/true);
    if (!separate_) master = item.value();
    masters_.emplace_back(item.key(), master);
  }
  if (separate_) model->to(compute_dtype);
  for (auto& p : model->parameters()) model_parameters_.push_back(p);
  if (separate_) {
    gradient_sums_.resize(model_parameters_.size());
    summed_.assign(model_parameters_.size(), false);
  }
}

void MasterWeights::add_to_sum(size_t i, const torch::Tensor& grad) {
  if (sums_discarded_) throw std::logic_error("MasterWeights: the gradient sums were discarded");
  auto& sum = gradient_sums_[i];
  if (!sum.defined()) sum = torch::empty(grad.sizes(), grad.options().dtype(torch::kFloat32));
  if (summed_[i]) {
    sum.add_(grad);  // fp32 += bf16 in one pass, no fp32 copy of the gradient
  } else {
    sum.copy_(grad);
    summed_[i] = true;
  }
}

void MasterWeights::accumulate() {
  if (!separate_) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < model_parameters_.size(); ++i) {
    auto& grad = model_parameters_[i].mutable_grad();
    if (!grad.defined()) continue;
    add_to_sum(i, grad);
    grad = torch::Tensor();
  }
}

std::vector<torch::Tensor> MasterWeights::gradients() {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < model_parameters_.size(); ++i) {
    auto& grad = model_parameters_[i].mutable_grad();
    if (separate_ && summed_[i]) {
      if (grad.defined()) add_to_sum(i, grad);
      grad = torch::Tensor();
      out.push_back(gradient_sums_[i]);
      continue;
    }
    if (!grad.defined()) grad = torch::zeros_like(model_parameters_[i]);
    out.push_back(grad);
  }
  return out;
}

void MasterWeights::discard_gradient_sums() {
  sums_discarded_ = true;
  for (auto& sum : gradient_sums_) sum = torch::Tensor();
}

torch::Tensor MasterWeights::accumulated_gradient(size_t i) const {
  if (!separate_) return model_parameters_[i].grad();
  return summed_[i] ? gradient_sums_[i] : torch::Tensor();
}

void MasterWeights::zero_gradients() {
  for (auto& p : model_parameters_) p.mutable_grad() = torch::Tensor();
  std::fill(summed_.begin(), summed_.end(), false);
}

void MasterWeights::publish() {
  if (!separate_) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < model_parameters_.size(); ++i) model_parameters_[i].copy_(masters_[i].second);
}

std::vector<torch::Tensor> MasterWeights::compute_copies() const {
  return separate_ ? model_parameters_ : std::vector<torch::Tensor>{};
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
  publish();
}

}  // namespace ssa::train
