// The resolved run configuration: one plain struct per YAML section. Defaults here are the
// documented defaults (docs/configuration.md is generated from the schema in schema.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ssa::config {

// HF `rope_scaling` / `rope_parameters` map. rope_type "default" means no scaling.
struct RopeScaling {
  std::string rope_type = "default";  // default | linear | llama3 | yarn
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama3 and yarn; 0 = unset (yarn then falls back to model.max_position_embeddings)
  int64_t original_max_position_embeddings = 0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> attention_factor;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  bool truncate = true;

  bool enabled() const { return rope_type != "default"; }
};

struct ModelConfig {
  int64_t hidden_size = 2048;
  int64_t intermediate_size = 8192;
  int64_t num_layers = 16;
  int64_t num_heads = 32;
  int64_t num_kv_heads = 8;
  int64_t head_dim = 64;
  int64_t vocab_size = 128256;
  int64_t max_position_embeddings = 131072;
  double rope_theta = 500000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-5;
  double init_std = 0.02;
  std::string gate = "headwise";  // none | headwise | elementwise
  bool tie_embeddings = true;
  int64_t bos_token_id = 128000;
  int64_t eos_token_id = 128001;

  int64_t group_size() const { return num_heads / num_kv_heads; }
};

// Block-sparse attention (MoBA style) and how the model attends at inference.
struct AttentionConfig {
  int64_t block_size = 16;
  int64_t topk = 16;                 // blocks per query, the current block included
  std::string selection = "group";   // group | head
  std::string inference = "sparse";  // full | sparse: the mode of eval/score/generate
  std::string backend = "auto";      // auto | reference | cuda
  int64_t query_chunk = 512;         // queries per chunk on the reference path (bounds memory)
};

struct SsaAlignConfig {
  std::string loss = "smooth_l1";  // smooth_l1 | l2
  double beta = 1.0;
  double alpha = 10.0;
  std::string directions = "both";  // both | sparsity | commitment | none
};

struct SsaConfig {
  std::string method = "ssa";                  // full | sparse | ssa
  double p_full = 0.5;
  std::string mode_sampling = "per_micro_batch";  // per_micro_batch | per_layer
  SsaAlignConfig align;
};

struct Config {
  ModelConfig model;
  AttentionConfig attention;
  SsaConfig ssa;
};

}  // namespace ssa::config
