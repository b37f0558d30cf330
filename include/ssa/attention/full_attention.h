// Causal full attention. q [B, T, Hq, D], k and v [B, T, Hkv, D] (Hkv divides Hq), scale
// 1/sqrt(D); returns [B, T, Hq, D]. `document_starts` (document_mask.h) keeps every query inside
// its document. CUDA tensors (LibTorch >= 2.5) go to the fused kernels of fused_full_attention.h
// wherever they take them (half or bf16: cuDNN, or FlashAttention's varlen kernel for packed
// documents), else to SDPA (with documents: an explicit mask, `query_chunk` queries at a time,
// K and V expanded to the query heads); everything else takes the ATen reference path, which
// processes `query_chunk` queries at a time so no [T, T] score matrix exists at once.
#pragma once

#include "ssa/attention/attention_spec.h"
#include "ssa/attention/document_mask.h"
#include "ssa/attention/kept_attention.h"
#include "ssa/compat/torch_compat.h"

namespace ssa::attention {

// `spans`: document_spans(document_starts) when the caller has it (computed here otherwise, which
// waits for the device). `kept` (kept_attention.h): taken by the fused kernels, unused elsewhere.
torch::Tensor full_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             Backend backend, int64_t query_chunk, const torch::Tensor& document_starts = {},
                             const DocumentSpans& spans = {}, KeptAttention* kept = nullptr);

// The reference path alone (also used by tests as the ground truth for the fused kernels).
torch::Tensor full_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       int64_t query_chunk, const torch::Tensor& document_starts = {});

}  // namespace ssa::attention
