// The training forward pass of one micro-batch: the decoder run layer by layer (so that layers
// can be activation-checkpointed) and the summed next-token cross entropy over the targets in
// the loss (linear_cross_entropy.h: the LM head and the loss in chunks, never the whole
// logits). The layer loop is LlamaForCausalLM::forward's, with each layer optionally wrapped in
// a checkpoint (activation_checkpoint.h).
#pragma once

#include <string>

#include "ssa/compat/torch_compat.h"
#include "ssa/model/llama.h"
#include "ssa/model/rope.h"
#include "ssa/train/micro_batch.h"

namespace ssa::train {

// Whether `layer` is activation-checkpointed under `checkpointing` (none | full | selective,
// the latter layers 0, every, 2 * every, ...).
bool layer_checkpointed(const std::string& checkpointing, int64_t every, int64_t layer);

struct MicroBatchLoss {
  torch::Tensor ce_sum;  // fp32 scalar: summed CE over the micro-batch's targets
  torch::Tensor align;   // fp32 scalar: mean over layers of the alignment loss (dual stream), else undefined
};

class TrainForward {
 public:
  // `checkpointing`: "none" | "full" | "selective" (layers 0, every, 2 * every, ...).
  // `keep_attention`: checkpointed layers keep their attention results (model::KeptLayer).
  TrainForward(model::LlamaForCausalLM model, const std::string& checkpointing, int64_t every,
               bool keep_attention = true);

  MicroBatchLoss operator()(const MicroBatch& batch, const model::ForwardOptions& options);

  bool checkpointed(int64_t layer) const;

 private:
  model::LlamaForCausalLM model_;
  model::RopeParameters rope_;
  std::string checkpointing_;
  int64_t every_;
  bool keep_attention_;
};

}  // namespace ssa::train
