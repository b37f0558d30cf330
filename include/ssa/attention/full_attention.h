// Causal full attention. q [B, T, Hq, D], k and v [B, T, Hkv, D] (Hkv divides Hq), scale
// 1/sqrt(D); returns [B, T, Hq, D]. CUDA tensors go to cuDNN's fused attention through
// LibTorch's SDPA (LibTorch >= 2.5); everything else takes the ATen reference path, which
// processes `query_chunk` queries at a time so no [T, T] score matrix exists at once.
// `document_starts` (document_mask.h) keeps every query inside its document; on CUDA it takes
// SDPA with an explicit mask, `query_chunk` queries at a time.
#pragma once

#include "ssa/attention/attention_spec.h"
#include "ssa/compat/torch_compat.h"

namespace ssa::attention {

torch::Tensor full_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             Backend backend, int64_t query_chunk, const torch::Tensor& document_starts = {});

// The reference path alone (also used by tests as the ground truth for the fused kernels).
torch::Tensor full_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       int64_t query_chunk, const torch::Tensor& document_starts = {});

}  // namespace ssa::attention
