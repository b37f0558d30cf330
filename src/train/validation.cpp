#include "ssa/train/validation.h"

#include <cmath>

#include "ssa/train/linear_cross_entropy.h"

namespace ssa::train {

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
      nll += linear_cross_entropy_sum(hidden, model->output_weight(), batch.targets, MicroBatch::kIgnoreTarget)
                 .item<double>();
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
