// Document masking of packed rows (varlen attention): a token attends only to the earlier tokens of
// its own document. A row is described by `document_starts`, int32 [B, T]: for every token the
// index in its row of the first token of its document. An undefined tensor means one document per
// row (plain causal attention). Every attention path takes it: full attention (key u visible to
// query t when starts[t] <= u <= t), block selection (past block j is a candidate of t only when
// it holds a token of t's document, j >= starts[t] / block_size; the current block always counts)
// and sparse attention (the same token rule inside the selected blocks).
#pragma once

#include <cstdint>

#include "ssa/compat/torch_compat.h"

namespace ssa::attention {

// The starts of the documents of rows with `position_ids` int64 [B, T]: a document begins at the
// first token of a row and wherever the position id does not count up by one (the loader restarts
// position ids at every document, data/row_packing.h). Returns int32 [B, T] on their device.
torch::Tensor document_starts(const torch::Tensor& position_ids);

// UsageError unless `starts` is undefined or int32 [q.size(0), q.size(1)] on q's device.
void check_document_starts(const torch::Tensor& starts, const torch::Tensor& q);

// Which keys 0 .. keys-1 queries t0 .. t0+n-1 may attend, bool [B, n, keys] ([1, n, keys] without
// `starts`): key <= t and key >= starts[t].
torch::Tensor visible_keys(const torch::Tensor& starts, int64_t t0, int64_t n, int64_t keys, torch::Device device);

// The documents of rows as spans of their tokens flattened to one stream of `tokens` = B * T, the
// form varlen attention kernels take. `offsets` int32 [documents + 1] on the starts' device: the
// first token of each document in the stream, then B * T; `longest`: tokens in the longest one.
struct DocumentSpans {
  torch::Tensor offsets;
  int64_t longest = 0;
  int64_t tokens = 0;

  int64_t documents() const { return offsets.defined() ? offsets.size(0) - 1 : 0; }
};

// The spans of `starts` (int32 [B, T] as document_starts makes them: 0 at every row's first
// token, then each token's start either itself or its predecessor's; UsageError otherwise),
// computed on the host: a CUDA `starts` is copied there once, which waits for the work queued
// before it.
DocumentSpans document_spans(const torch::Tensor& starts);

// document_spans of CUDA starts, which the fused kernels take; nothing for undefined or CPU starts.
DocumentSpans cuda_document_spans(const torch::Tensor& starts);

}  // namespace ssa::attention
