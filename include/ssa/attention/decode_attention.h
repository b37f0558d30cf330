// Attention of new queries against a key/value cache, for generation with a KV cache. The queries
// q [B, n, Hq, D] stand at positions offset .. offset+n-1 of a sequence whose post-RoPE keys and
// values k, v [B, offset+n, Hkv, D] are all cached (the new ones included). Each function equals
// the whole-sequence function of full_attention.h / sparse_attention.h restricted to the rows of
// the new queries (the tests prove it), so decoding follows the training rule of ssa-method.md
// section 2 exactly: the selection of a query depends only on it and on the keys up to it.
#pragma once

#include "ssa/attention/attention_spec.h"
#include "ssa/compat/torch_compat.h"

namespace ssa::attention {

// Causal full attention of the new queries; returns [B, n, Hq, D].
torch::Tensor full_attention_at(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t offset,
                                int64_t query_chunk);

// Block selection of the new queries: int32 [B, n, H_sel, K] with K = min(topk, number of blocks
// of the offset+n cached tokens), laid out as select_blocks lays out its rows.
torch::Tensor select_blocks_at(const torch::Tensor& q, const torch::Tensor& k, int64_t offset, const SparseSpec& spec,
                               int64_t query_chunk);

// Block-sparse attention of the new queries over `selection` (from select_blocks_at; computed
// when undefined); returns [B, n, Hq, D].
torch::Tensor sparse_attention_at(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  int64_t offset, const SparseSpec& spec, int64_t query_chunk,
                                  const torch::Tensor& selection = {});

}  // namespace ssa::attention
