// What the trainer reports about the device it runs on: its name (for the MFU peak table) and
// peak memory.
#pragma once

#include <cstdint>
#include <string>

#include "ssa/compat/torch_compat.h"

namespace ssa::train {

// "cpu", or the GPU's name as CUDA reports it (e.g. "NVIDIA H100 80GB HBM3").
std::string device_name(torch::Device device);

// Peak bytes since the last reset: allocated by LibTorch's CUDA allocator on a GPU, the
// process's peak resident set on the CPU (which cannot be reset).
int64_t peak_memory_bytes(torch::Device device);
void reset_peak_memory(torch::Device device);

// Waits for queued GPU work (timings must include it); nothing on the CPU.
void synchronize(torch::Device device);
// Waits for the work queued on the device's current stream only: NCCL's kernels run on streams
// of their own, which the current stream waits for only where a collective's wait() put that.
void synchronize_current_stream(torch::Device device);

}  // namespace ssa::train
