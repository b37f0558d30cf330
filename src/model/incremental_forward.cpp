// The decoder pass of llama.cpp over new tokens with a per-layer key/value cache. It reads the
// modules' public weights rather than adding a cached path to every module, so the training
// forward stays untouched; the equality test against forward() guards the two against drifting.
#include "ssa/attention/decode_attention.h"
#include "ssa/attention/full_attention.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/model/kv_cache.h"
#include "ssa/model/output_gate.h"
#include "ssa/model/rope.h"
#include "ssa/util/error.h"

namespace ssa::model {
namespace {

torch::Tensor cached_attention(LlamaAttentionImpl& attn, const config::ModelConfig& c, const torch::Tensor& x,
                               const RopeTables& rope, LayerKvCache& cache, const ForwardOptions& opt) {
  const int64_t B = x.size(0), n = x.size(1);
  const int64_t offset = cache.k.defined() ? cache.k.size(1) : 0;
  auto q = apply_rope(attn.q_proj(x).view({B, n, c.num_heads, c.head_dim}), rope, opt.fused_kernels);
  auto k = apply_rope(attn.k_proj(x).view({B, n, c.num_kv_heads, c.head_dim}), rope, opt.fused_kernels);
  auto v = attn.v_proj(x).view({B, n, c.num_kv_heads, c.head_dim});
  cache.k = offset == 0 ? k.contiguous() : torch::cat({cache.k, k}, 1);
  cache.v = offset == 0 ? v.contiguous() : torch::cat({cache.v, v}, 1);

  torch::Tensor out;
  if (offset == 0) {
    // A prompt on an empty cache is the whole-sequence case: the training paths (and kernels).
    out = opt.mode == attention::Mode::kFull
              ? attention::full_attention(q, k, v, opt.backend, opt.query_chunk)
              : attention::sparse_attention(q, k, v, opt.sparse, opt.backend, opt.query_chunk);
  } else {
    out = opt.mode == attention::Mode::kFull
              ? attention::full_attention_at(q, cache.k, cache.v, offset, opt.query_chunk)
              : attention::sparse_attention_at(q, cache.k, cache.v, offset, opt.sparse, opt.query_chunk);
  }
  if (const auto logits = attn.gate_logits(x); logits.defined()) out = output_gate(out, logits, opt.fused_kernels);
  return attn.o_proj(out.reshape({B, n, c.num_heads * c.head_dim}));
}

}  // namespace

torch::Tensor forward_cached(LlamaForCausalLM& model, const torch::Tensor& tokens, KvCache& cache,
                             const ForwardOptions& options) {
  if (tokens.dim() != 2) throw UsageError("model input must be [batch, length] token ids");
  if (!options.layer_modes.empty() || options.dual_stream) {
    throw UsageError("cached decoding takes one attention mode for every layer and no dual stream");
  }
  torch::NoGradGuard no_grad;
  const auto& c = model->config();
  if (cache.layers.empty()) cache.layers.resize(static_cast<size_t>(c.num_layers));
  if (static_cast<int64_t>(cache.layers.size()) != c.num_layers) throw UsageError("KV cache has the wrong number of layers");
  const int64_t B = tokens.size(0), n = tokens.size(1), offset = cache.length();
  if (offset > 0 && cache.layers[0].k.size(0) != B) throw UsageError("KV cache holds a different batch size");
  auto positions = torch::arange(offset, offset + n, torch::TensorOptions().dtype(torch::kInt64).device(tokens.device()))
                       .expand({B, n});
  // The RoPE tables are a pure function of the config; recomputing the inverse frequencies per
  // call costs [head_dim / 2] floats.
  const RopeTables rope = rope_tables(rope_parameters(c), positions);

  auto h = model->model->embed_tokens(tokens);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    auto& layer = model->model->layers->at<LlamaDecoderLayerImpl>(l);
    const bool fused = options.fused_kernels;
    h = h + cached_attention(*layer.self_attn, c, layer.input_layernorm(h, fused), rope, cache.layers[l], options);
    h = h + layer.mlp(layer.post_attention_layernorm(h, fused), fused);
  }
  return model->model->norm(h, options.fused_kernels);
}

}  // namespace ssa::model
