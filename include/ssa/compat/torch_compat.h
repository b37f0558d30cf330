// The one place where LibTorch 1.13 (Debian's libtorch-dev, CPU) and LibTorch 2.x (the PyTorch
// wheel, CUDA) differ for this project. Everything else calls these helpers.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#define SSA_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// at::scaled_dot_product_attention exists from 2.0; the cuDNN backend and enable_gqa from 2.5.
#define SSA_HAS_SDPA SSA_TORCH_AT_LEAST(2, 5)

namespace ssa::compat {

// Human-readable LibTorch version, for logs and benchmark JSON.
inline std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// True when this build can run CUDA tensors (a CUDA LibTorch and a visible device).
inline bool cuda_available() { return torch::cuda::is_available(); }

}  // namespace ssa::compat
