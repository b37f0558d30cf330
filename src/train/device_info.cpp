#include "ssa/train/device_info.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <sys/resource.h>

#if SSA_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace ssa::train {

std::string device_name(torch::Device device) {
#if SSA_HAVE_CUDA_KERNELS
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.has_index() ? device.index() : 0)->name;
#endif
  return device.is_cuda() ? "cuda (unknown model)" : "cpu";
}

int64_t peak_memory_bytes(torch::Device device) {
#if SSA_HAVE_CUDA_KERNELS
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    return stats.allocated_bytes[0].peak;  // [0]: all pools
  }
#endif
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

void reset_peak_memory(torch::Device device) {
#if SSA_HAVE_CUDA_KERNELS
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
#endif
}

void synchronize(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

void synchronize_current_stream(torch::Device device) {
  if (device.is_cuda()) c10::impl::getDeviceGuardImpl(device.type())->getStream(device).synchronize();
}

}  // namespace ssa::train
