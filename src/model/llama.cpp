#include "ssa/model/llama.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>

#include "ssa/attention/document_mask.h"
#include "ssa/attention/full_attention.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/model/output_gate.h"
#include "ssa/model/rms_norm.h"
#include "ssa/model/swiglu.h"
#include "ssa/util/error.h"

namespace ssa::model {
namespace {

torch::nn::Linear linear(int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); }

}  // namespace

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) { weight = register_parameter("weight", torch::ones({dim})); }

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x, bool fused) { return rms_norm(x, weight, eps_, fused); }

LlamaAttentionImpl::LlamaAttentionImpl(const config::ModelConfig& c)
    : num_heads_(c.num_heads), num_kv_heads_(c.num_kv_heads), head_dim_(c.head_dim), gate_(c.gate) {
  q_proj = register_module("q_proj", linear(c.hidden_size, c.num_heads * c.head_dim));
  k_proj = register_module("k_proj", linear(c.hidden_size, c.num_kv_heads * c.head_dim));
  v_proj = register_module("v_proj", linear(c.hidden_size, c.num_kv_heads * c.head_dim));
  o_proj = register_module("o_proj", linear(c.num_heads * c.head_dim, c.hidden_size));
  if (gate_ == "headwise") g_proj = register_module("g_proj", linear(c.hidden_size, c.num_heads));
  if (gate_ == "elementwise") g_proj = register_module("g_proj", linear(c.hidden_size, c.num_heads * c.head_dim));
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, LayerContext& ctx, int64_t layer) {
  const auto& opt = ctx.options;
  const int64_t B = x.size(0), T = x.size(1);
  auto q = apply_rope(q_proj(x).view({B, T, num_heads_, head_dim_}), ctx.rope, opt.fused_kernels);
  auto k = apply_rope(k_proj(x).view({B, T, num_kv_heads_, head_dim_}), ctx.rope, opt.fused_kernels);
  auto v = v_proj(x).view({B, T, num_kv_heads_, head_dim_});
  if (opt.on_attention_inputs) opt.on_attention_inputs(layer, q, k, v);

  const auto logits = gate_logits(x);
  auto gated = [&](const torch::Tensor& o) {
    return logits.defined() ? output_gate(o, logits, opt.fused_kernels) : o;
  };

  const attention::Mode mode = opt.layer_modes.empty() ? opt.mode : opt.layer_modes.at(layer);
  const bool need_full = opt.dual_stream || mode == attention::Mode::kFull;
  const bool need_sparse = opt.dual_stream || mode == attention::Mode::kSparse;

  torch::Tensor o_full, o_sparse;
  const auto& starts = ctx.document_starts;
  KeptLayer* kept = ctx.kept;
  const bool keep_attention = kept != nullptr && kept->attention;
  if (need_full) {
    o_full = gated(attention::full_attention(q, k, v, opt.backend, opt.query_chunk, starts, ctx.documents,
                                             keep_attention ? &kept->full : nullptr));
  }
  if (need_sparse) {
    torch::Tensor selection = kept != nullptr ? kept->selection : torch::Tensor();
    if (!selection.defined() && opt.keep_selections) {
      selection = attention::select_blocks(q, k, opt.sparse, opt.query_chunk, starts);
    } else if (!selection.defined() && kept != nullptr) {
      selection = attention::route_blocks(q, k, opt.sparse, opt.backend, opt.query_chunk, starts);
    }
    if (kept != nullptr) kept->selection = selection;
    if (opt.keep_selections) ctx.result.selections[layer] = selection;
    o_sparse = gated(attention::sparse_attention(q, k, v, opt.sparse, opt.backend, opt.query_chunk, selection, starts,
                                                 keep_attention ? &kept->sparse : nullptr));
  }
  if (opt.dual_stream) ctx.result.layer_align[layer] = attention::alignment_loss(o_full, o_sparse, opt.align, opt.fused_kernels);

  const auto& main = mode == attention::Mode::kFull ? o_full : o_sparse;
  return o_proj(main.reshape({B, T, num_heads_ * head_dim_}));
}

torch::Tensor LlamaAttentionImpl::gate_logits(const torch::Tensor& x) {
  if (gate_ == "headwise") return g_proj(x);
  if (gate_ == "elementwise") return g_proj(x).view({x.size(0), x.size(1), num_heads_, head_dim_});
  return {};
}

bool computes_full_attention(const ForwardOptions& options) {
  if (options.dual_stream) return true;
  if (options.layer_modes.empty()) return options.mode == attention::Mode::kFull;
  return std::find(options.layer_modes.begin(), options.layer_modes.end(), attention::Mode::kFull) !=
         options.layer_modes.end();
}

attention::DocumentSpans forward_document_spans(const ForwardOptions& options, const torch::Tensor& document_starts) {
  return computes_full_attention(options) ? attention::cuda_document_spans(document_starts) : attention::DocumentSpans{};
}

LlamaMLPImpl::LlamaMLPImpl(const config::ModelConfig& c) {
  gate_proj = register_module("gate_proj", linear(c.hidden_size, c.intermediate_size));
  up_proj = register_module("up_proj", linear(c.hidden_size, c.intermediate_size));
  down_proj = register_module("down_proj", linear(c.intermediate_size, c.hidden_size));
}

torch::Tensor LlamaMLPImpl::forward(const torch::Tensor& x, bool fused) {
  return down_proj(swiglu(gate_proj(x), up_proj(x), fused));
}

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const config::ModelConfig& c) {
  self_attn = register_module("self_attn", LlamaAttention(c));
  mlp = register_module("mlp", LlamaMLP(c));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& x, LayerContext& context, int64_t layer) {
  const bool fused = context.options.fused_kernels;
  auto h = x + self_attn->forward(input_layernorm(x, fused), context, layer);
  return h + mlp(post_attention_layernorm(h, fused), fused);
}

LlamaModelImpl::LlamaModelImpl(const config::ModelConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) layers->push_back(LlamaDecoderLayer(c));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

LlamaForCausalLMImpl::LlamaForCausalLMImpl(const config::ModelConfig& c) : config_(c), rope_(rope_parameters(c)) {
  model = register_module("model", LlamaModel(c));
  if (!c.tie_embeddings) lm_head = register_module("lm_head", linear(c.hidden_size, c.vocab_size));
}

ForwardResult LlamaForCausalLMImpl::forward(const torch::Tensor& tokens, const ForwardOptions& options) {
  if (tokens.dim() != 2) throw UsageError("model input must be [batch, length] token ids");
  if (!options.layer_modes.empty() && static_cast<int64_t>(options.layer_modes.size()) != config_.num_layers) {
    throw UsageError("layer_modes must name one mode per layer");
  }
  const int64_t B = tokens.size(0), T = tokens.size(1);
  torch::Tensor positions = options.position_ids;
  if (!positions.defined()) {
    positions = torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(tokens.device())).expand({B, T});
  }
  const RopeTables rope = rope_tables(rope_, positions);

  ForwardResult result;
  if (options.dual_stream) result.layer_align.resize(config_.num_layers);
  if (options.keep_selections) result.selections.resize(config_.num_layers);
  const auto starts = options.document_mask ? attention::document_starts(positions) : torch::Tensor();
  LayerContext context{options, rope, result, starts, forward_document_spans(options, starts)};

  auto h = model->embed_tokens(tokens);
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    h = model->layers->at<LlamaDecoderLayerImpl>(l).forward(h, context, l);
  }
  result.hidden = model->norm(h, options.fused_kernels);
  if (options.dual_stream) result.align = torch::stack(result.layer_align).mean();
  return result;
}

torch::Tensor LlamaForCausalLMImpl::output_weight() {
  return config_.tie_embeddings ? model->embed_tokens->weight : lm_head->weight;
}

torch::Tensor LlamaForCausalLMImpl::logits(const torch::Tensor& hidden) {
  return torch::matmul(hidden, output_weight().t());
}

void LlamaForCausalLMImpl::initialize(uint64_t seed) {
  torch::NoGradGuard no_grad;
  // One CPU generator drawn in parameter-name order: the same seed gives the same model on any
  // device and in any build.
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& item : named_parameters()) {
    auto& p = item.value();
    const bool is_norm = item.key().find("norm") != std::string::npos;
    torch::Tensor value = torch::empty(p.sizes(), torch::kFloat32);
    if (is_norm) {
      value.fill_(1.0);
    } else {
      value.normal_(0.0, config_.init_std, generator);
    }
    p.copy_(value);
  }
}

}  // namespace ssa::model
