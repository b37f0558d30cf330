// Validation during training: token-mean loss and perplexity of the held-out micro-batches
// under full attention and under sparse attention (the gap between the two is what SSA is
// about), whatever the training method.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ssa/compat/torch_compat.h"
#include "ssa/model/llama.h"
#include "ssa/train/micro_batch.h"

namespace ssa::train {

// Keys val_loss_full, val_ppl_full, val_loss_sparse, val_ppl_sparse, val_tokens. `options`
// carries the sparse budget and backend; its mode is set per pass. Batches are moved to the
// model's device.
std::map<std::string, double> validate(model::LlamaForCausalLM& model, const std::vector<MicroBatch>& batches,
                                       const model::ForwardOptions& options);

}  // namespace ssa::train
