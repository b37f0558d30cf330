#include "ssa/train/validation.h"

#include <cmath>

namespace ssa::train {
namespace {

// Positions per logits chunk: bounds the fp32 logits to 2048 x vocab at a time.
constexpr int64_t kLogitsChunk = 2048;

double summed_ce(model::LlamaForCausalLM& model, const torch::Tensor& hidden, const torch::Tensor& targets) {
  double total = 0;
  for (int64_t t0 = 0; t0 < hidden.size(1); t0 += kLogitsChunk) {
    const int64_t n = std::min(kLogitsChunk, hidden.size(1) - t0);
    auto logits = model->logits(hidden.narrow(1, t0, n)).to(torch::kFloat32);
    total += torch::nn::functional::cross_entropy(
                 logits.reshape({-1, logits.size(-1)}), targets.narrow(1, t0, n).reshape({-1}),
                 torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(
                     MicroBatch::kIgnoreTarget))
                 .item<double>();
  }
  return total;
}

}  // namespace

std::map<std::string, double> validate(model::LlamaForCausalLM& model, const std::vector<MicroBatch>& batches,
                                       const model::ForwardOptions& options) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto device = model->model->embed_tokens->weight.device();
  std::map<std::string, double> out;
  int64_t tokens = 0;
  for (const auto& batch : batches) tokens += batch.target_tokens;
  for (const auto mode : {attention::Mode::kFull, attention::Mode::kSparse}) {
    model::ForwardOptions pass = options;
    pass.mode = mode;
    pass.layer_modes.clear();
    pass.dual_stream = false;
    double nll = 0;
    for (const auto& cpu_batch : batches) {
      const auto batch = cpu_batch.to(device);
      pass.position_ids = batch.positions;
      auto hidden = model->forward(batch.inputs, pass).hidden;
      nll += summed_ce(model, hidden, batch.targets);
    }
    const double loss = tokens > 0 ? nll / static_cast<double>(tokens) : 0.0;
    const std::string name = attention::mode_name(mode);
    out["val_loss_" + name] = loss;
    out["val_ppl_" + name] = std::exp(loss);
  }
  out["val_tokens"] = static_cast<double>(tokens);
  if (was_training) model->train();
  return out;
}

}  // namespace ssa::train
