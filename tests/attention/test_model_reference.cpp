// The whole Llama forward (ssa-method.md section 1, with full and block-sparse attention) against
// an independent float64 implementation written here with loops and basic ATen ops.
#include <gtest/gtest.h>

#include <cmath>

#include "attention/reference_math.h"
#include "ssa/model/llama.h"

namespace ssa::attention {
namespace {

config::ModelConfig tiny_config() {
  config::ModelConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 97;
  c.gate = "headwise";
  c.tie_embeddings = true;
  c.init_std = 0.25;  // large enough for peaked attention, so that the selection matters
  return c;
}

class ReferenceLlama {
 public:
  ReferenceLlama(model::LlamaForCausalLM& m, const config::ModelConfig& c) : c_(c) {
    for (const auto& item : m->named_parameters()) params_[item.key()] = item.value().detach().to(torch::kFloat64);
  }

  // Logits [B, T, vocab]; `sparse` null means full causal attention.
  torch::Tensor logits(const torch::Tensor& tokens, const SparseSpec* sparse) const {
    const int64_t B = tokens.size(0), T = tokens.size(1);
    const auto& embed = param("model.embed_tokens.weight");
    auto h = torch::zeros({B, T, c_.hidden_size}, torch::kFloat64);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) h[b][t] = embed[tokens[b][t].item<int64_t>()];
    const auto cos_sin = rope_tables(B, T);
    for (int64_t l = 0; l < c_.num_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      h = h + attention(rms_norm(h, param(p + "input_layernorm.weight")), p + "self_attn.", cos_sin, sparse);
      auto x = rms_norm(h, param(p + "post_attention_layernorm.weight"));
      auto gate = linear(x, param(p + "mlp.gate_proj.weight"));
      auto silu = gate / (1 + torch::exp(-gate));
      h = h + linear(silu * linear(x, param(p + "mlp.up_proj.weight")), param(p + "mlp.down_proj.weight"));
    }
    return linear(rms_norm(h, param("model.norm.weight")), embed);  // tied head
  }

 private:
  const torch::Tensor& param(const std::string& name) const { return params_.at(name); }

  static torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight) { return torch::matmul(x, weight.t()); }

  // HF's LlamaRMSNorm normalises in float32 whatever the input type, then casts back and scales;
  // written with the same float32 ops so that the rounding is identical.
  torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight) const {
    auto h = x.to(torch::kFloat32);
    h = h * torch::rsqrt(h.pow(2).mean(-1, true) + c_.rms_norm_eps);
    return weight * h.to(torch::kFloat64);
  }

  // HF's default RoPE tables: float32 inverse frequencies theta^(-2i/d), angles and cos/sin,
  // [B, T, D] in the half-split layout.
  std::pair<torch::Tensor, torch::Tensor> rope_tables(int64_t B, int64_t T) const {
    const int64_t D = c_.head_dim;
    auto inv_freq = 1.0 / torch::pow(torch::scalar_tensor(c_.rope_theta, torch::kFloat32),
                                      torch::arange(0, D, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(D));
    auto positions = torch::arange(T, torch::kInt64).expand({B, T}).to(torch::kFloat32);
    auto angles = positions.unsqueeze(-1) * inv_freq;
    auto emb = torch::cat({angles, angles}, -1);
    return {emb.cos().to(torch::kFloat64), emb.sin().to(torch::kFloat64)};
  }

  // x [B, T, H, D] rotated: pairs (d, d + D/2).
  torch::Tensor rotate(const torch::Tensor& x, const std::pair<torch::Tensor, torch::Tensor>& cos_sin) const {
    auto out = torch::empty_like(x);
    auto xa = x.accessor<double, 4>();
    auto oa = out.accessor<double, 4>();
    auto ca = cos_sin.first.accessor<double, 3>();
    auto sa = cos_sin.second.accessor<double, 3>();
    const int64_t half = x.size(3) / 2;
    for (int64_t b = 0; b < x.size(0); ++b)
      for (int64_t t = 0; t < x.size(1); ++t)
        for (int64_t h = 0; h < x.size(2); ++h)
          for (int64_t d = 0; d < x.size(3); ++d) {
            const double partner = d < half ? -xa[b][t][h][d + half] : xa[b][t][h][d - half];
            oa[b][t][h][d] = xa[b][t][h][d] * ca[b][t][d] + partner * sa[b][t][d];
          }
    return out;
  }

  torch::Tensor attention(const torch::Tensor& x, const std::string& p,
                          const std::pair<torch::Tensor, torch::Tensor>& cos_sin, const SparseSpec* sparse) const {
    const int64_t B = x.size(0), T = x.size(1), Hq = c_.num_heads, Hkv = c_.num_kv_heads, D = c_.head_dim;
    auto q = rotate(linear(x, param(p + "q_proj.weight")).view({B, T, Hq, D}).contiguous(), cos_sin);
    auto k = rotate(linear(x, param(p + "k_proj.weight")).view({B, T, Hkv, D}).contiguous(), cos_sin);
    auto v = linear(x, param(p + "v_proj.weight")).view({B, T, Hkv, D}).contiguous();
    torch::Tensor o;
    if (sparse == nullptr) {
      o = test::brute_force_attention(q, k, v, [](int64_t, int64_t t, int64_t) { return test::causal_tokens(t); });
    } else {
      auto selection =
          test::brute_force_selection(q, k, sparse->block_size, sparse->topk, sparse->selection == Selection::kGroup);
      o = test::brute_force_attention(q, k, v, [&](int64_t b, int64_t t, int64_t i) {
        return test::selected_tokens(selection, sparse->block_size, Hq, b, t, i);
      });
    }
    auto gate = torch::sigmoid(linear(x, param(p + "g_proj.weight")));  // one scalar per head and token
    o = o * gate.unsqueeze(-1);
    return linear(o.reshape({B, T, Hq * D}), param(p + "o_proj.weight"));
  }

  config::ModelConfig c_;
  std::map<std::string, torch::Tensor> params_;
};

double relative_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  return (actual - expected).abs().max().item<double>() / expected.abs().max().item<double>();
}

TEST(ModelReference, LogitsMatchAnIndependentFloat64Forward) {
  const auto c = tiny_config();
  model::LlamaForCausalLM m(c);
  m->initialize(17);
  m->to(torch::kFloat64);
  torch::manual_seed(51);
  auto tokens = torch::randint(0, c.vocab_size, {2, 37}, torch::kInt64);
  const ReferenceLlama reference(m, c);
  torch::NoGradGuard no_grad;

  model::ForwardOptions options;
  options.query_chunk = 8;
  options.mode = Mode::kFull;
  auto full = m->logits(m->forward(tokens, options).hidden);
  auto expected_full = reference.logits(tokens, nullptr);
  ASSERT_EQ(full.sizes(), expected_full.sizes());
  EXPECT_LT(relative_error(full, expected_full), 1e-10);

  options.mode = Mode::kSparse;
  for (auto variant : {Selection::kGroup, Selection::kHead}) {
    // 10 blocks of 4 with a budget of 3: sparse differs from full beyond token 12.
    options.sparse = {4, 3, variant};
    auto sparse = m->logits(m->forward(tokens, options).hidden);
    auto expected_sparse = reference.logits(tokens, &options.sparse);
    EXPECT_LT(relative_error(sparse, expected_sparse), 1e-10) << (variant == Selection::kGroup ? "group" : "head");
    EXPECT_GT(relative_error(sparse, expected_full), 1e-4) << "the budget must make a difference";
    // Budget covering every block: the sparse model is the full model.
    options.sparse = {4, 10, variant};
    EXPECT_LT(relative_error(m->logits(m->forward(tokens, options).hidden), expected_full), 1e-10);
  }
}

}  // namespace
}  // namespace ssa::attention
