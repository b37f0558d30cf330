// The device and compute dtype a run uses, from train.device and train.precision (shared by the
// trainer and the step benchmark, so both train on the same device with the same precision).
#pragma once

#include <cstdint>
#include <string>

#include "ssa/compat/torch_compat.h"

namespace ssa::train {

// `name`: auto | cpu | cuda. `local_rank` (the launcher's LOCAL_RANK, 0 in one process) picks the
// GPU. Throws UsageError when cuda is asked for and there is none, or the rank has no GPU.
torch::Device pick_device(const std::string& name, int64_t local_rank);

// `name`: bf16 | fp32 | auto (bf16 on a GPU, fp32 on the CPU).
torch::ScalarType pick_precision(const std::string& name, torch::Device device);

}  // namespace ssa::train
