// Causal full attention on CUDA through LibTorch's fused attention kernels called as explicit
// forward and backward ops: for rows that are one document each, cuDNN or FlashAttention-2,
// whichever SDPA itself would pick; for packed rows of several documents, FlashAttention-2's
// varlen kernel (grouped-query heads native: no mask tensor, no K and V expanded to the query
// heads). As autograd functions of their own they save their output and log-sum-exp for the
// backward pass and can keep them for a layer's recomputation (kept_attention.h).
#pragma once

#include "ssa/attention/document_mask.h"
#include "ssa/attention/kept_attention.h"
#include "ssa/compat/torch_compat.h"

namespace ssa::attention {

#if SSA_HAS_SDPA
// The fused op that runs plain causal rows: SDPA's own choice for q [B, T, Hq, D] and k, v
// [B, T, Hkv, D] (causal, grouped-query, with a backward pass when they require grad or `kept` is
// given), when that is cuDNN or FlashAttention; kNone when it is another kernel or the head dim
// does not suit FlashAttention's varlen kernel (a multiple of 8, at most 256). Asked once per call.
enum class FusedFullKernel { kNone, kCudnn, kFlash };
FusedFullKernel fused_full_attention_kernel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            const KeptAttention* kept = nullptr);

// Causal attention inside the documents of `spans` (document_spans of the rows' starts, on q's
// device; undefined offsets: one document per row) with `kernel` (not kNone) for rows of one
// document, FlashAttention's varlen kernel otherwise. Returns [B, T, Hq, D]. `kept`: see
// kept_attention.h; pass the one `kernel` was chosen with.
torch::Tensor fused_full_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   FusedFullKernel kernel, const DocumentSpans& spans, KeptAttention* kept = nullptr);
#endif

}  // namespace ssa::attention
