// One optimizer step: forward and backward of every micro-batch (gradient accumulation), the
// global gradient norm, the non-finite guard, clipping and the AdamW update.
//
// The loss of micro-batch i is  ce_sum_i / target_tokens + alpha * align_i / micro_batches,
// with target_tokens and micro_batches counted over the whole step (all micro-batches of all
// ranks): the gradient is then that of the token-mean CE of the step plus alpha times the mean
// alignment loss, whatever the split into micro-batches and ranks (4 micro-batches of 1 row give
// the gradient of one batch of 4).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ssa/attention/mode_sampler.h"
#include "ssa/compat/torch_compat.h"
#include "ssa/config/config.h"
#include "ssa/model/llama.h"
#include "ssa/train/adamw.h"
#include "ssa/train/master_weights.h"
#include "ssa/train/micro_batch.h"
#include "ssa/train/train_forward.h"

namespace ssa::dist {
class DataParallel;
class ProcessGroup;
struct StatePiece;
}  // namespace ssa::dist

namespace ssa::train {

// Counts over the whole step (every rank), which normalise the per-micro-batch losses.
struct StepTotals {
  int64_t target_tokens = 0;
  int64_t micro_batches = 0;
};

struct StepResult {
  double loss = 0;       // ce + alpha * align (ce alone without the alignment term)
  double ce = 0;         // token-mean cross entropy
  double align = 0;      // mean alignment loss (ssa method), else 0
  double grad_norm = 0;  // global L2 norm before clipping
  double clip = 1;       // factor the gradients were multiplied by
  std::string modes;     // per micro-batch: F(ull), S(parse) or M (layers differ)
  int64_t input_tokens = 0;
  int64_t target_tokens = 0;
  bool skipped = false;  // non-finite loss or gradient norm: no update
  // Wall time from the start of run() until the loss sums were read: reading them waits for the
  // device's queue, so this covers the forward and backward passes of every micro-batch. The rest
  // of run() is the update: gradient norm, clipping, AdamW, copying the masters into the model.
  // (`ssa bench step` splits the step with it.)
  double forward_backward_seconds = 0;
  // Data-parallel steps: the time spent waiting for communication that no computation hid
  // (dist/data_parallel.h); 0 in one process.
  double communication_seconds = 0;
};

class TrainStep {
 public:
  // `model` must already be on its device; MasterWeights casts it to `compute_dtype`. With a
  // process `group`, the step is data-parallel (dist/data_parallel.h, config.dist).
  TrainStep(const config::Config& config, model::LlamaForCausalLM model, torch::ScalarType compute_dtype,
            dist::ProcessGroup* group = nullptr);
  ~TrainStep();

  // Runs one step on this rank's micro-batches (already on the model's device). Micro-batch i
  // draws its attention mode with counter `first_micro_batch + i`. `poison` multiplies the loss
  // by NaN (the tests' fault injection).
  StepResult run(const std::vector<MicroBatch>& micro_batches, const StepTotals& totals, uint64_t first_micro_batch,
                 double lr, bool poison = false);

  // The forward options of micro-batch `counter` (training method, sampled modes).
  model::ForwardOptions forward_options(uint64_t counter) const;

  MasterWeights& weights() { return weights_; }
  AdamW& optimizer() { return optimizer_; }
  // The parameter ranges the optimizer's state covers (whole parameters unless ZeRO shards them).
  std::vector<dist::StatePiece> optimizer_pieces() const;

 private:
  config::Config config_;
  model::LlamaForCausalLM model_;
  MasterWeights weights_;
  std::unique_ptr<dist::DataParallel> parallel_;
  AdamW optimizer_;
  TrainForward forward_;
  attention::ModeSampler sampler_;
  model::ForwardOptions base_options_;
};

// The AdamW of `weights` with per-tensor decay flags from `optim`.
AdamW make_adamw(const MasterWeights& weights, const config::OptimConfig& optim);

}  // namespace ssa::train
