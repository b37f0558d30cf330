// Logits parity with HF transformers on tiny random Llama models, one per RoPE type
// (tests/fixtures/hf_llama, made by scripts/hf-parity/make_fixture.py on the GPU machine).
#include <gtest/gtest.h>

#include <filesystem>

#include "ssa/model/model_folder.h"
#include "ssa/io/hf_config.h"
#include "ssa/model/tensor_file.h"

#include <nlohmann/json.hpp>

namespace ssa::model {
namespace {

namespace fs = std::filesystem;

class HfParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParity, LogitsAndInverseFrequenciesMatchTransformers) {
  const fs::path folder = fs::path(SSA_SOURCE_DIR) / "tests" / "fixtures" / "hf_llama" / GetParam();
  auto expected = read_tensor_file(folder / "expected.safetensors");
  auto loaded = load_model_folder(folder);
  auto& m = loaded.model;
  m->eval();
  EXPECT_EQ(m->config().gate, "none");  // plain HF Llama: no attention_gate key

  auto inv_freq = rope_parameters(m->config()).inv_freq;
  EXPECT_TRUE(torch::allclose(inv_freq, expected["inv_freq"], 1e-6, 0)) << inv_freq << expected["inv_freq"];
  EXPECT_NEAR(rope_parameters(m->config()).attention_scaling, expected["attention_scaling"][0].item<double>(), 1e-6);

  torch::NoGradGuard no_grad;
  ForwardOptions options;
  options.mode = attention::Mode::kFull;
  options.position_ids = expected["position_ids"];
  auto logits = m->logits(m->forward(expected["input_ids"], options).hidden);
  const auto& reference = expected["logits"];
  ASSERT_EQ(logits.sizes(), reference.sizes());
  const double rel = ((logits - reference).norm() / reference.norm()).item<double>();
  EXPECT_LT(rel, 1e-5) << "relative error " << rel;
  EXPECT_LT((logits - reference).abs().max().item<double>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(RopeTypes, HfParity, ::testing::Values("default", "linear", "llama3", "yarn"));

// A folder written in transformers 4's layout (`rope_scaling` beside a top-level `rope_theta`)
// loads to the same model as transformers 5's `rope_parameters`.
TEST(HfConfig, Llama32_1BConfigJsonParses) {
  // Verbatim keys of meta-llama/Llama-3.2-1B's config.json.
  const auto json = nlohmann::json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
    "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})");
  auto parsed = io::parse_hf_config(json, "config.json");
  const auto& m = parsed.model;
  EXPECT_EQ(m.hidden_size, 2048);
  EXPECT_EQ(m.num_layers, 16);
  EXPECT_EQ(m.num_heads, 32);
  EXPECT_EQ(m.num_kv_heads, 8);
  EXPECT_EQ(m.head_dim, 64);
  EXPECT_TRUE(m.tie_embeddings);
  EXPECT_EQ(m.gate, "none");
  EXPECT_EQ(m.rope_scaling.rope_type, "llama3");
  EXPECT_DOUBLE_EQ(m.rope_scaling.factor, 32.0);
  EXPECT_EQ(m.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(m.rope_theta, 500000.0);
  EXPECT_EQ(parsed.torch_dtype, "bfloat16");
  EXPECT_FALSE(parsed.sparse_attention.has_value());
}

}  // namespace
}  // namespace ssa::model
