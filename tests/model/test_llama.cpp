#include <gtest/gtest.h>

#include "ssa/model/llama.h"

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

}  // namespace
}  // namespace ssa::model
