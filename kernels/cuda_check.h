// Error checks for the plain-CUDA kernels: every runtime call and every launch goes through one of
// these, so a failure surfaces as an exception naming the call site instead of a later wrong result.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace ssa::kernels {

inline void throw_cuda_error(cudaError_t error, const char* what, const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(error) + " (" + cudaGetErrorString(error) +
                           ") in " + what + " at " + file + ":" + std::to_string(line));
}

}  // namespace ssa::kernels

#define SSA_CUDA_CHECK(call)                                                         \
  do {                                                                               \
    const cudaError_t ssa_cuda_status_ = (call);                                     \
    if (ssa_cuda_status_ != cudaSuccess) {                                           \
      ::ssa::kernels::throw_cuda_error(ssa_cuda_status_, #call, __FILE__, __LINE__); \
    }                                                                                \
  } while (0)

// After a <<<...>>> launch: configuration errors show up in cudaGetLastError.
#define SSA_CUDA_CHECK_LAUNCH(name) SSA_CUDA_CHECK_LAUNCH_IMPL(name, __FILE__, __LINE__)
#define SSA_CUDA_CHECK_LAUNCH_IMPL(name, file, line)                              \
  do {                                                                            \
    const cudaError_t ssa_cuda_status_ = cudaGetLastError();                      \
    if (ssa_cuda_status_ != cudaSuccess) {                                        \
      ::ssa::kernels::throw_cuda_error(ssa_cuda_status_, "launch of " name, file, line); \
    }                                                                             \
  } while (0)
