// Tensors handed to the plain-CUDA kernels (kernels/), which take raw pointers: bf16 data as
// __nv_bfloat16, and inputs the vectorised kernels may load 16 bytes at a time. CUDA builds only.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ssa/compat/torch_compat.h"

namespace ssa::compat {

inline const __nv_bfloat16* bf16_data(const torch::Tensor& t) {
  return reinterpret_cast<const __nv_bfloat16*>(t.data_ptr<at::BFloat16>());
}
inline __nv_bfloat16* bf16_data(torch::Tensor& t) {
  return reinterpret_cast<__nv_bfloat16*>(t.data_ptr<at::BFloat16>());
}

// `t` itself when it is contiguous and its data 16-byte aligned (a view may start anywhere in its
// storage), else a contiguous copy, whose allocation is aligned.
inline torch::Tensor contiguous_aligned(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return reinterpret_cast<std::uintptr_t>(c.data_ptr()) % 16 == 0 ? c : c.clone();
}

}  // namespace ssa::compat
