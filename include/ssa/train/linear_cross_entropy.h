// The LM head and its cross entropy in one step that never holds the [tokens, vocab] logits: the
// rows go through in chunks; each chunk's logits live only while its loss and, when a
// gradient is wanted, its gradients are computed (softmax minus one-hot, multiplied into the
// gradients of the hidden states and of the output weight), all in the forward pass. The
// backward pass only scales those stored gradients by the incoming one. So the loss costs the
// unfused loss's three matrix products and nothing is recomputed under activation
// checkpointing; between forward and backward it holds the gradients of the hidden states
// ([tokens, hidden]) and of the weight ([vocab, hidden]), both in fp32.
#pragma once

#include <cstdint>

#include "ssa/compat/torch_compat.h"

namespace ssa::train {

// Rows per chunk on the ATen path: the fp32 logits of one chunk are at most 2048 x vocab (1 GiB at
// Llama-3's 128256).
inline constexpr int64_t kLogitsChunk = 2048;
// Rows per chunk on the CUDA kernel path (kernels/cross_entropy.cu), which holds a chunk's logits
// in bf16 only and turns them into their gradient in place: 2 GiB at 128256, so that an 8k
// micro-batch of the 1B model is one chunk (one weight-gradient product).
inline constexpr int64_t kKernelLogitsChunk = 8192;

// Whether linear_cross_entropy_sum takes the CUDA kernel path for these operands (CUDA bf16, a
// CUDA build, `fused`).
bool linear_cross_entropy_uses_kernel(const torch::Tensor& hidden, const torch::Tensor& weight, bool fused);

// Sum over the positions whose target is not `ignore_index` of -log softmax(hidden W^T)[target],
// as an fp32 scalar. hidden [..., H], weight [V, H] (the same dtype), targets int64 [...] (the
// leading shape of hidden). Differentiable in hidden and weight where grad mode is on and they
// require it. Matches cross_entropy(matmul(hidden, W^T).float(), targets, reduction=sum).
// `chunk_rows` 0 takes kKernelLogitsChunk on the kernel path and kLogitsChunk on the ATen path;
// `fused` false keeps CUDA bf16 operands on the ATen path (the eager reference).
torch::Tensor linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, int64_t ignore_index, int64_t chunk_rows = 0,
                                       bool fused = true);

#if SSA_HAVE_CUDA_KERNELS
// kernels/cross_entropy.cu on bf16 CUDA logits [rows, vocab] and int64 targets [rows]: returns the
// float32 loss of every row and, with `write_gradient`, replaces the logits by softmax - one-hot.
torch::Tensor cross_entropy_rows_cuda(torch::Tensor& logits, const torch::Tensor& targets, int64_t ignore_index,
                                      bool write_gradient);
#endif

}  // namespace ssa::train
