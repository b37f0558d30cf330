// MoBA-style block-sparse attention (ssa-method.md section 2). q [B, T, Hq, D], k and v
// [B, T, Hkv, D], post-RoPE. Gradients flow to q, k and v through the selected tokens only; the
// selection itself is not differentiable. `document_starts` (document_mask.h; undefined = one
// document per row) keeps the selection and the attention of every query inside its document.
#pragma once

#include "ssa/attention/attention_spec.h"
#include "ssa/attention/kept_attention.h"
#include "ssa/compat/torch_compat.h"

namespace ssa::attention {

// Block selection: int32 [B, T, H_sel, K] with K = min(topk, number of blocks), H_sel = Hkv for
// `group` and Hq for `head`; entry 0 is the current block, then past blocks by decreasing
// importance; -1 where fewer than K blocks exist. Computed without a [T, num_blocks] tensor for
// the whole sequence (query chunks of `query_chunk`).
torch::Tensor select_blocks(const torch::Tensor& q, const torch::Tensor& k, const SparseSpec& spec,
                            int64_t query_chunk, const torch::Tensor& document_starts = {});

// The selection sparse_attention computes when given none: the CUDA routing kernel where the
// kernels cover the call (sparse_attention_cuda_supports, backend not `reference`), else
// select_blocks.
torch::Tensor route_blocks(const torch::Tensor& q, const torch::Tensor& k, const SparseSpec& spec, Backend backend,
                           int64_t query_chunk, const torch::Tensor& document_starts = {});

// Attention over the selected blocks (token-level causal mask). `selection` as returned by
// select_blocks; computed here when undefined. Returns [B, T, Hq, D]. `kept` (kept_attention.h):
// taken by the CUDA kernels, unused by the reference path.
torch::Tensor sparse_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const SparseSpec& spec, Backend backend, int64_t query_chunk,
                               const torch::Tensor& selection = {}, const torch::Tensor& document_starts = {},
                               KeptAttention* kept = nullptr);

// The ATen reference path alone (ground truth for the CUDA kernels).
torch::Tensor sparse_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const SparseSpec& spec, int64_t query_chunk, const torch::Tensor& selection,
                                         const torch::Tensor& document_starts = {});

}  // namespace ssa::attention
