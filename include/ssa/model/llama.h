// The Llama decoder (ssa-method.md section 1) as plain LibTorch modules whose registered names
// are HF Llama's parameter names (model.layers.N.self_attn.q_proj.weight, ...; the attention
// output gate is self_attn.g_proj). Distribution, mixed precision and checkpointing are applied
// from outside.
#pragma once

#include <functional>
#include <vector>

#include "ssa/attention/alignment_loss.h"
#include "ssa/attention/attention_spec.h"
#include "ssa/attention/document_mask.h"
#include "ssa/attention/kept_attention.h"
#include "ssa/compat/torch_compat.h"
#include "ssa/config/config.h"
#include "ssa/model/rope.h"

namespace ssa::model {

// How one forward call attends. Layers take `layer_modes[l]` (or `mode` when empty). With
// `dual_stream` every layer computes both outputs and the alignment loss (SSA training).
struct ForwardOptions {
  attention::Mode mode = attention::Mode::kFull;
  std::vector<attention::Mode> layer_modes;
  bool dual_stream = false;
  attention::AlignSpec align;
  attention::SparseSpec sparse;
  attention::Backend backend = attention::Backend::kAuto;
  int64_t query_chunk = 512;
  bool keep_selections = false;  // return each sparse layer's block selection
  torch::Tensor position_ids;    // int64 [B, T]; default 0..T-1 per row
  // Attend only inside documents, which start where position_ids restart (attention/document_mask.h).
  bool document_mask = false;
  // RMSNorm, RoPE, SwiGLU, the output gate and the alignment loss through the CUDA kernels
  // (kernels/) wherever they take the tensors (CUDA bf16); false: ATen ops everywhere, the eager
  // reference (rms_norm.h, rope.h, swiglu.h, output_gate.h, attention/alignment_loss.h).
  bool fused_kernels = true;
  // Called by every layer with its post-RoPE q [B, T, Hq, D], k and v [B, T, Hkv, D] (statistics).
  std::function<void(int64_t layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v)>
      on_attention_inputs;
};

// Whether a forward call with `options` computes full attention in some layer.
bool computes_full_attention(const ForwardOptions& options);

// The document spans a forward call's full attention takes (attention/document_mask.h): those of
// CUDA `document_starts` when the call computes full attention, else nothing (no host copy).
attention::DocumentSpans forward_document_spans(const ForwardOptions& options, const torch::Tensor& document_starts);

struct ForwardResult {
  torch::Tensor hidden;                    // final-normed hidden states [B, T, hidden]
  torch::Tensor align;                     // mean over layers of the alignment loss (dual stream)
  std::vector<torch::Tensor> layer_align;  // per layer (dual stream)
  std::vector<torch::Tensor> selections;   // per layer [B, T, H_sel, K] (keep_selections)
};

// What a layer's first run keeps for its second: activation checkpointing runs a layer again in
// the backward pass. The sparse stream's block selection, so that the recomputation attends over
// the same blocks without routing again; with `attention`, also what the fused attention ops
// computed (attention/kept_attention.h), so that it does not attend again either, for the memory
// of their outputs until the backward pass reaches the layer.
struct KeptLayer {
  bool attention = true;
  torch::Tensor selection;
  attention::KeptAttention full, sparse;
};

// Per-call state the decoder layers read and fill.
struct LayerContext {
  const ForwardOptions& options;
  const RopeTables& rope;
  ForwardResult& result;
  torch::Tensor document_starts;     // int32 [B, T] with options.document_mask, else undefined
  attention::DocumentSpans documents;  // document_spans(document_starts) on CUDA, else undefined
  KeptLayer* kept = nullptr;         // null: keep nothing
};

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x, bool fused = true);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const config::ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, LayerContext& context, int64_t layer);
  // The output gate's logits for hidden states x [B, T, hidden]: [B, T, Hq] (`headwise`) or
  // [B, T, Hq, D] (`elementwise`), for output_gate (output_gate.h); undefined without a gate.
  torch::Tensor gate_logits(const torch::Tensor& x);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr}, g_proj{nullptr};

 private:
  int64_t num_heads_, num_kv_heads_, head_dim_;
  std::string gate_;
};
TORCH_MODULE(LlamaAttention);

class LlamaMLPImpl : public torch::nn::Module {
 public:
  explicit LlamaMLPImpl(const config::ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, bool fused = true);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMLP);

class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  explicit LlamaDecoderLayerImpl(const config::ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, LayerContext& context, int64_t layer);

  LlamaAttention self_attn{nullptr};
  LlamaMLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const config::ModelConfig& config);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(LlamaModel);

class LlamaForCausalLMImpl : public torch::nn::Module {
 public:
  explicit LlamaForCausalLMImpl(const config::ModelConfig& config);

  // tokens int64 [B, T].
  ForwardResult forward(const torch::Tensor& tokens, const ForwardOptions& options);
  // Logits [.., vocab] of final hidden states (the tied embedding or lm_head).
  torch::Tensor logits(const torch::Tensor& hidden);
  // The LM head weight [vocab, hidden] (tied or not).
  torch::Tensor output_weight();

  // N(0, init_std) for Linear and Embedding weights, ones for norms, from `seed`.
  void initialize(uint64_t seed);

  const config::ModelConfig& config() const { return config_; }
  LlamaModel model{nullptr};
  torch::nn::Linear lm_head{nullptr};

 private:
  config::ModelConfig config_;
  RopeParameters rope_;
};
TORCH_MODULE(LlamaForCausalLM);

}  // namespace ssa::model
