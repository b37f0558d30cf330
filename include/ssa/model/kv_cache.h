// Incremental decoding: the post-RoPE keys and values of every layer kept between calls, and a
// forward pass over new tokens that attends to them. forward_cached over a prompt and then one
// token at a time gives the same hidden states as one forward() over the whole sequence, for
// full attention and for block-sparse attention with either selection variant
// (tests/eval/test_generation.cpp).
#pragma once

#include <vector>

#include "ssa/compat/torch_compat.h"
#include "ssa/model/llama.h"

namespace ssa::model {

struct LayerKvCache {
  torch::Tensor k, v;  // [B, cached, Hkv, D], post-RoPE; undefined while empty
};

struct KvCache {
  std::vector<LayerKvCache> layers;
  int64_t length() const { return layers.empty() || !layers[0].k.defined() ? 0 : layers[0].k.size(1); }
};

// Runs the new tokens [B, n] at positions cache.length() .. cache.length()+n-1, appends their keys
// and values to `cache` and returns the final-normed hidden states [B, n, hidden]. Reads
// options.mode (full or sparse for every layer), options.sparse, options.backend and
// options.query_chunk; a call on an empty cache attends exactly as forward() does. Inference
// only: no autograd graph is built.
torch::Tensor forward_cached(LlamaForCausalLM& model, const torch::Tensor& tokens, KvCache& cache,
                             const ForwardOptions& options);

}  // namespace ssa::model
