#include "ssa/train/device_choice.h"

#include <fmt/format.h>

#include "ssa/util/error.h"

namespace ssa::train {

torch::Device pick_device(const std::string& name, int64_t local_rank) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" && !compat::cuda_available()) {
    throw UsageError("config key 'train.device': cuda was asked for but this build or machine has no CUDA device");
  }
  if (name == "cuda" || (name == "auto" && compat::cuda_available())) {
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (local_rank >= count) {
      throw UsageError(fmt::format("LOCAL_RANK {} has no GPU: this node has {} CUDA device(s)", local_rank, count));
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
  }
  return torch::kCPU;
}

torch::ScalarType pick_precision(const std::string& name, torch::Device device) {
  if (name == "bf16") return torch::kBFloat16;
  if (name == "fp32") return torch::kFloat32;
  return device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
}

}  // namespace ssa::train
