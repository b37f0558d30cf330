// The LM head and its cross entropy in one step that never holds the [tokens, vocab] logits: the
// rows go through in chunks; each chunk's fp32 logits live only while its loss and, when a
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

// Rows per chunk: the fp32 logits of one chunk are at most 2048 x vocab (1 GiB at Llama-3's
// 128256).
inline constexpr int64_t kLogitsChunk = 2048;

// Sum over the positions whose target is not `ignore_index` of -log softmax(hidden W^T)[target],
// as an fp32 scalar. hidden [..., H], weight [V, H] (the same dtype), targets int64 [...] (the
// leading shape of hidden). Differentiable in hidden and weight where grad mode is on and they
// require it. Matches cross_entropy(matmul(hidden, W^T).float(), targets, reduction=sum).
torch::Tensor linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, int64_t ignore_index,
                                       int64_t chunk_rows = kLogitsChunk);

}  // namespace ssa::train
