#include "ssa/train/micro_batch.h"

namespace ssa::train {

MicroBatch MicroBatch::to(torch::Device device) const {
  return {inputs.to(device), targets.to(device), positions.to(device), target_tokens};
}

}  // namespace ssa::train
