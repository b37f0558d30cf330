// What the launch configurations of the elementwise kernels ask of the current device.
#pragma once

#include <cuda_runtime.h>

#include "cuda_check.h"

namespace ssa::kernels {

// Streaming multiprocessors of the current device: grid-stride kernels size their grids from it.
inline int multiprocessor_count() {
  int device = 0, count = 0;
  SSA_CUDA_CHECK(cudaGetDevice(&device));
  SSA_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

}  // namespace ssa::kernels
