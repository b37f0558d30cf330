#include <gtest/gtest.h>

#include "ssa/attention/sparse_attention.h"
#include "ssa/model/llama.h"
#include "ssa/model/output_gate.h"
#include "ssa/model/rope.h"

namespace ssa::model {
namespace {

config::ModelConfig tiny(const std::string& gate, int64_t heads, int64_t kv_heads, bool tie) {
  config::ModelConfig c;
  c.hidden_size = 48;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = 12;
  c.vocab_size = 101;
  c.gate = gate;
  c.tie_embeddings = tie;
  return c;
}

TEST(Llama, ParameterNamesAndShapesAreHfLlamas) {
  LlamaForCausalLM m(tiny("headwise", 4, 2, false));
  auto params = m->named_parameters();
  std::map<std::string, std::vector<int64_t>> expected = {
      {"model.embed_tokens.weight", {101, 48}},
      {"model.layers.0.self_attn.q_proj.weight", {48, 48}},
      {"model.layers.0.self_attn.k_proj.weight", {24, 48}},
      {"model.layers.0.self_attn.v_proj.weight", {24, 48}},
      {"model.layers.0.self_attn.o_proj.weight", {48, 48}},
      {"model.layers.0.self_attn.g_proj.weight", {4, 48}},
      {"model.layers.1.mlp.gate_proj.weight", {96, 48}},
      {"model.layers.1.mlp.up_proj.weight", {96, 48}},
      {"model.layers.1.mlp.down_proj.weight", {48, 96}},
      {"model.layers.1.input_layernorm.weight", {48}},
      {"model.layers.1.post_attention_layernorm.weight", {48}},
      {"model.norm.weight", {48}},
      {"lm_head.weight", {101, 48}},
  };
  EXPECT_EQ(params.size(), 2 + 2 * 10 + 1);  // embed, norm, lm_head + 10 per layer
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_EQ(params[name].sizes().vec(), shape) << name;
  }
}

TEST(Llama, GateVariantsAndTying) {
  LlamaForCausalLM none(tiny("none", 4, 4, true));
  EXPECT_FALSE(none->named_parameters().contains("model.layers.0.self_attn.g_proj.weight"));
  EXPECT_FALSE(none->named_parameters().contains("lm_head.weight"));
  EXPECT_TRUE(none->output_weight().is_same(none->model->embed_tokens->weight));
  LlamaForCausalLM elementwise(tiny("elementwise", 4, 1, true));
  EXPECT_EQ(elementwise->named_parameters()["model.layers.0.self_attn.g_proj.weight"].sizes().vec(),
            (std::vector<int64_t>{48, 48}));
}

TEST(Llama, ForwardShapesForGqaGroupsAndCausality) {
  for (int64_t kv : {1, 2, 4}) {
    LlamaForCausalLM m(tiny("headwise", 4, kv, true));
    m->initialize(7);
    auto tokens = torch::randint(0, 101, {2, 9}, torch::kInt64);
    ForwardOptions options;
    auto out = m->forward(tokens, options);
    EXPECT_EQ(out.hidden.sizes().vec(), (std::vector<int64_t>{2, 9, 48}));
    EXPECT_EQ(m->logits(out.hidden).sizes().vec(), (std::vector<int64_t>{2, 9, 101}));
    // Changing the last token changes nothing before it.
    auto altered = tokens.clone();
    altered[0][8] = (altered[0][8].item<int64_t>() + 1) % 101;
    auto out2 = m->forward(altered, options);
    EXPECT_TRUE(torch::allclose(out.hidden[0].narrow(0, 0, 8), out2.hidden[0].narrow(0, 0, 8), 1e-5, 1e-6));
    EXPECT_FALSE(torch::allclose(out.hidden[0][8], out2.hidden[0][8]));
  }
}

TEST(Llama, InitializationIsSeededAndHasTheRightStatistics) {
  auto c = tiny("headwise", 4, 2, true);
  c.hidden_size = 256;
  c.head_dim = 64;
  c.intermediate_size = 512;
  LlamaForCausalLM a(c), b(c), other(c);
  a->initialize(3);
  b->initialize(3);
  other->initialize(4);
  auto pa = a->named_parameters(), pb = b->named_parameters(), po = other->named_parameters();
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  auto w = pa["model.layers.0.mlp.up_proj.weight"];
  EXPECT_FALSE(torch::equal(w, po["model.layers.0.mlp.up_proj.weight"]));
  EXPECT_NEAR(w.std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.001);
  EXPECT_TRUE(torch::equal(pa["model.norm.weight"], torch::ones({256})));
}

// Activation checkpointing runs a layer twice; LayerContext::kept (KeptLayer::selection) makes the
// second run attend over the blocks the first one routed: the first run stores its routing in the
// slot, a run with the slot filled attends over what it holds and does not route.
TEST(Llama, AKeptSelectionIsStoredByTheFirstRunAndUsedByTheNext) {
  LlamaForCausalLM m(tiny("headwise", 4, 2, true));
  m->initialize(9);
  const int64_t T = 24, Bs = 4;
  torch::manual_seed(9);
  const auto x = torch::randn({1, T, 48});
  ForwardOptions options;
  options.mode = attention::Mode::kSparse;
  options.sparse = {Bs, 2, attention::Selection::kGroup};
  torch::Tensor q, k, v;
  options.on_attention_inputs = [&](int64_t, const torch::Tensor& lq, const torch::Tensor& lk,
                                    const torch::Tensor& lv) {
    q = lq;
    k = lk;
    v = lv;
  };
  const RopeTables rope = rope_tables(rope_parameters(m->config()), torch::arange(T).expand({1, T}));
  ForwardResult result;
  auto& attention = *m->model->layers->at<LlamaDecoderLayerImpl>(0).self_attn;
  torch::NoGradGuard no_grad;

  KeptLayer kept_layer;
  torch::Tensor& kept = kept_layer.selection;
  LayerContext first{options, rope, result, {}, {}, &kept_layer};
  const auto routed = attention.forward(x, first, 0);
  ASSERT_TRUE(kept.defined()) << "the first run stores its selection";
  EXPECT_TRUE(torch::equal(kept, attention::select_blocks(q, k, options.sparse, options.query_chunk)));
  EXPECT_TRUE(kept_layer.sparse.tensors.empty()) << "the reference path keeps no attention results";
  LayerContext unkept{options, rope, result, {}, {}};
  EXPECT_TRUE(torch::allclose(attention.forward(x, unkept, 0), routed, 1e-6, 1e-7)) << "same as routing each time";

  // A different valid selection in the slot: the current block, then the block before it.
  auto previous = torch::empty_like(kept);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < kept.size(2); ++h) {
      previous[0][t][h][0] = t / Bs;
      previous[0][t][h][1] = t / Bs > 0 ? t / Bs - 1 : -1;
    }
  }
  ASSERT_FALSE(torch::equal(previous, kept)) << "the test needs a selection the routing did not make";
  kept = previous.clone();
  LayerContext second{options, rope, result, {}, {}, &kept_layer};
  const auto out = attention.forward(x, second, 0);
  const auto o = attention::sparse_attention_reference(q, k, v, options.sparse, options.query_chunk, previous);
  const auto want = attention.o_proj(output_gate_reference(o, attention.gate_logits(x)).reshape({1, T, 48}));
  EXPECT_TRUE(torch::allclose(out, want, 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(out, routed, 1e-3, 1e-3));
  EXPECT_TRUE(torch::equal(kept, previous)) << "a filled slot is left as it was";
}

// Only calls that compute full attention take document spans (and their copy to the host).
TEST(Llama, FullAttentionIsComputedByFullAndDualStreamCallsAndLayerModesWithFull) {
  ForwardOptions options;
  options.mode = attention::Mode::kSparse;
  EXPECT_FALSE(computes_full_attention(options));
  options.dual_stream = true;
  EXPECT_TRUE(computes_full_attention(options));
  options.dual_stream = false;
  options.layer_modes = {attention::Mode::kSparse, attention::Mode::kSparse};
  EXPECT_FALSE(computes_full_attention(options));
  options.layer_modes[1] = attention::Mode::kFull;
  EXPECT_TRUE(computes_full_attention(options));
  options.layer_modes.clear();
  options.mode = attention::Mode::kFull;
  EXPECT_TRUE(computes_full_attention(options));
}

}  // namespace
}  // namespace ssa::model
