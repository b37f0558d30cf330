#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "cross_entropy.h"
#include "ssa/compat/kernel_arguments.h"
#include "ssa/train/linear_cross_entropy.h"
#include "ssa/util/error.h"

namespace ssa::train {

torch::Tensor cross_entropy_rows_cuda(torch::Tensor& logits, const torch::Tensor& targets, int64_t ignore_index,
                                      bool write_gradient) {
  if (!logits.is_cuda() || logits.scalar_type() != torch::kBFloat16 || logits.dim() != 2 || !logits.is_contiguous() ||
      reinterpret_cast<std::uintptr_t>(logits.data_ptr()) % 16 != 0) {
    throw UsageError("cross entropy (CUDA): logits must be a contiguous, 16-byte aligned CUDA bf16 [rows, vocab] tensor");
  }
  if (targets.scalar_type() != torch::kInt64 || targets.numel() != logits.size(0) || targets.device() != logits.device()) {
    throw UsageError("cross entropy (CUDA): targets must be int64 [rows] on the logits' device");
  }
  const c10::cuda::CUDAGuard guard(logits.device());
  const auto t = targets.contiguous();
  auto row_loss = torch::empty({logits.size(0)}, logits.options().dtype(torch::kFloat32));
  kernels::cross_entropy_rows(compat::bf16_data(logits), t.data_ptr<int64_t>(), row_loss.data_ptr<float>(),
                              logits.size(0), logits.size(1), ignore_index, write_gradient,
                              at::cuda::getCurrentCUDAStream().stream());
  return row_loss;
}

}  // namespace ssa::train
