#include "ssa/train/train_step.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "ssa/attention/alignment_loss.h"
#include "ssa/dist/data_parallel.h"
#include "ssa/train/grad_norm.h"

namespace ssa::train {

AdamW make_adamw(const MasterWeights& weights, const config::OptimConfig& optim) {
  std::vector<bool> decay;
  for (const auto& [name, tensor] : weights.masters()) {
    decay.push_back(takes_weight_decay(name, tensor, optim.embedding_weight_decay));
  }
  return AdamW(weights.masters(), decay, adamw_options(optim));
}

TrainStep::TrainStep(const config::Config& config, model::LlamaForCausalLM model, torch::ScalarType compute_dtype,
                     dist::ProcessGroup* group)
    : config_(config),
      model_(model),
      weights_(model, compute_dtype),
      parallel_(group ? std::make_unique<dist::DataParallel>(*group, weights_, model->parameters(), config.dist)
                      : nullptr),
      optimizer_(parallel_ ? parallel_->make_optimizer(config.optim) : make_adamw(weights_, config.optim)),
      forward_(model, config.train.activation_checkpointing, config.train.activation_checkpointing_every,
               config.train.activation_checkpointing_keep_attention),
      sampler_(static_cast<uint64_t>(config.train.seed), config.ssa.p_full, config.ssa.mode_sampling == "per_layer") {
  base_options_.sparse = attention::sparse_spec(config.attention);
  base_options_.backend = attention::parse_backend(config.attention.backend);
  base_options_.query_chunk = config.attention.query_chunk;
  base_options_.document_mask = config.attention.document_mask;
  base_options_.fused_kernels = config.train.fused_kernels;
  base_options_.align = attention::align_spec(config.ssa.align);
}

TrainStep::~TrainStep() = default;

std::vector<dist::StatePiece> TrainStep::optimizer_pieces() const {
  return parallel_ ? parallel_->optimizer_pieces() : dist::whole_pieces(weights_.masters());
}

model::ForwardOptions TrainStep::forward_options(uint64_t counter) const {
  model::ForwardOptions options = base_options_;
  const std::string& method = config_.ssa.method;
  if (method == "full") {
    options.mode = attention::Mode::kFull;
  } else if (method == "sparse") {
    options.mode = attention::Mode::kSparse;
  } else {
    options.layer_modes = sampler_.modes(counter, config_.model.num_layers);
    options.mode = options.layer_modes.front();
    options.dual_stream = true;
  }
  return options;
}

namespace {

char mode_letter(const model::ForwardOptions& options) {
  const auto& modes = options.layer_modes;
  for (const auto& m : modes) {
    if (m != modes.front()) return 'M';
  }
  return options.mode == attention::Mode::kFull ? 'F' : 'S';
}

}  // namespace

StepResult TrainStep::run(const std::vector<MicroBatch>& micro_batches, const StepTotals& totals,
                          uint64_t first_micro_batch, double lr, bool poison) {
  const auto start = std::chrono::steady_clock::now();
  StepResult result;
  const bool ssa = config_.ssa.method == "ssa";
  const double alpha = config_.ssa.align.alpha;
  const double token_weight = 1.0 / static_cast<double>(std::max<int64_t>(1, totals.target_tokens));
  const double micro_weight = 1.0 / static_cast<double>(std::max<int64_t>(1, totals.micro_batches));
  // Summed on the device: reading a value per micro-batch would stall the GPU queue.
  torch::Tensor ce_sum = torch::zeros({}, torch::kFloat64), align_sum = torch::zeros({}, torch::kFloat64);
  weights_.zero_gradients();
  model_->train();
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    const auto& batch = micro_batches[i];
    const auto options = forward_options(first_micro_batch + i);
    result.modes.push_back(mode_letter(options));
    auto parts = forward_(batch, options);
    torch::Tensor loss = parts.ce_sum * token_weight;
    if (ssa) loss = loss + parts.align * (alpha * micro_weight);
    if (poison) loss = loss * std::numeric_limits<double>::quiet_NaN();
    const bool last = i + 1 == micro_batches.size();
    if (parallel_) parallel_->before_backward(last);
    loss.backward();
    if (parallel_) {
      parallel_->after_backward(last);
    } else if (!last) {
      weights_.accumulate();
    }
    if (i == 0) {
      ce_sum = ce_sum.to(parts.ce_sum.device());
      align_sum = align_sum.to(parts.ce_sum.device());
    }
    ce_sum += parts.ce_sum.detach().to(torch::kFloat64);
    if (ssa) align_sum += parts.align.detach().to(torch::kFloat64);
    result.input_tokens += batch.inputs.numel();
    result.target_tokens += batch.target_tokens;
  }
  // Sums over every rank's micro-batches (totals counts all of them).
  std::vector<double> sums{ce_sum.item<double>(), align_sum.item<double>()};
  result.forward_backward_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (parallel_) parallel_->communicate("loss reduction", [&] { sums = parallel_->group().sum(sums, "loss reduction"); });
  result.ce = sums[0] * token_weight;
  result.align = sums[1] * micro_weight;
  result.loss = result.ce + (ssa ? alpha * result.align : 0.0);
  if (poison) result.loss = std::numeric_limits<double>::quiet_NaN();

  auto grads = parallel_ ? parallel_->gradients() : weights_.gradients();
  result.grad_norm = parallel_ ? parallel_->gradient_norm(grads) : global_grad_norm(grads);
  result.skipped = !std::isfinite(result.loss) || !std::isfinite(result.grad_norm);
  if (parallel_) result.skipped = parallel_->group().any(result.skipped, "non-finite check");
  if (!result.skipped) {
    result.clip = clip_factor(result.grad_norm, config_.optim.grad_clip);
    // A sharded optimizer updates pieces of the masters: they reach the model after the gather.
    const bool whole_tensors = !parallel_ || !parallel_->shards_optimizer();
    optimizer_.step(lr, grads, result.clip, whole_tensors ? weights_.compute_copies() : std::vector<torch::Tensor>{});
    if (parallel_) parallel_->after_update();
    if (!whole_tensors) weights_.publish();
  }
  weights_.zero_gradients();
  if (parallel_) result.communication_seconds = parallel_->take_communication_seconds();
  return result;
}

}  // namespace ssa::train
