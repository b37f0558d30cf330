#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ssa/io/hf_config.h"
#include "ssa/util/error.h"

namespace ssa::io {
namespace {

using nlohmann::json;

TEST(HfConfig, RoundTripKeepsEveryModelField) {
  config::ModelConfig m;
  m.hidden_size = 96;
  m.intermediate_size = 160;
  m.num_layers = 3;
  m.num_heads = 6;
  m.num_kv_heads = 2;
  m.head_dim = 16;
  m.vocab_size = 500;
  m.gate = "elementwise";
  m.tie_embeddings = false;
  m.rope_scaling.rope_type = "yarn";
  m.rope_scaling.factor = 4;
  m.rope_scaling.original_max_position_embeddings = 2048;
  m.rope_scaling.attention_factor = 1.3;
  config::AttentionConfig a;
  a.block_size = 32;
  a.topk = 8;
  a.selection = "head";
  a.inference = "full";
  auto j = to_hf_config(m, a, "bfloat16");
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(j["num_hidden_layers"], 3);
  EXPECT_EQ(j["attention_gate"], "elementwise");
  EXPECT_EQ(j["rope_scaling"]["rope_type"], "yarn");

  auto back = parse_hf_config(json::parse(j.dump()), "test");
  EXPECT_EQ(back.model.hidden_size, 96);
  EXPECT_EQ(back.model.num_kv_heads, 2);
  EXPECT_EQ(back.model.head_dim, 16);
  EXPECT_EQ(back.model.gate, "elementwise");
  EXPECT_FALSE(back.model.tie_embeddings);
  EXPECT_EQ(back.model.rope_scaling.rope_type, "yarn");
  EXPECT_EQ(back.model.rope_scaling.original_max_position_embeddings, 2048);
  ASSERT_TRUE(back.model.rope_scaling.attention_factor.has_value());
  EXPECT_DOUBLE_EQ(*back.model.rope_scaling.attention_factor, 1.3);
  ASSERT_TRUE(back.sparse_attention.has_value());
  EXPECT_EQ(back.sparse_attention->block_size, 32);
  EXPECT_EQ(back.sparse_attention->selection, "head");
  EXPECT_EQ(back.sparse_attention->inference, "full");
  EXPECT_EQ(back.torch_dtype, "bfloat16");
}

TEST(HfConfig, Transformers5RopeParametersAndDefaults) {
  auto j = json::parse(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
      "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100, "eos_token_id": [7, 8],
      "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1234.0}})");
  auto c = parse_hf_config(j, "x").model;
  EXPECT_EQ(c.num_kv_heads, 4);  // absent: multi-head attention
  EXPECT_EQ(c.head_dim, 16);     // absent: hidden / heads
  EXPECT_DOUBLE_EQ(c.rope_theta, 1234.0);
  EXPECT_EQ(c.rope_scaling.rope_type, "linear");
  EXPECT_EQ(c.eos_token_id, 7);
  EXPECT_FALSE(c.tie_embeddings);  // transformers' LlamaConfig default
  EXPECT_EQ(c.gate, "none");
  // The legacy key `type` names the rope type too.
  j.erase("rope_parameters");
  j["rope_scaling"] = json::parse(R"({"type": "linear", "factor": 3.0})");
  EXPECT_DOUBLE_EQ(parse_hf_config(j, "x").model.rope_scaling.factor, 3.0);
}

TEST(HfConfig, UnsupportedOrMissingFieldsAreErrors) {
  auto base = json::parse(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
      "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100})");
  auto expect_error = [](json j, const std::string& fragment) {
    try {
      parse_hf_config(j, "cfg.json");
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
    }
  };
  auto j = base;
  j.erase("vocab_size");
  expect_error(j, "vocab_size");
  j = base;
  j["model_type"] = "mistral";
  expect_error(j, "mistral");
  j = base;
  j["hidden_act"] = "gelu";
  expect_error(j, "gelu");
  j = base;
  j["rope_scaling"] = json::parse(R"({"rope_type": "longrope"})");
  expect_error(j, "longrope");
  j = base;
  j["hidden_size"] = "wide";
  expect_error(j, "hidden_size");
  j = base;
  j["attention_gate"] = "sigmoid";
  expect_error(j, "sigmoid");
}

}  // namespace
}  // namespace ssa::io
