// The `config.json` of a model folder in HF Llama layout. Written with HF's keys (transformers 4
// `rope_scaling` + `rope_theta`, which transformers 5 also reads) plus two extra keys of ours:
//   "attention_gate": "none" | "headwise" | "elementwise"   (absent = "none", plain Llama)
//   "sparse_attention": {"block_size", "topk", "selection", "inference"}   (optional)
// Reading accepts transformers 5's `rope_parameters` too (with `rope_theta` inside it).
#pragma once

#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <optional>

#include "ssa/config/config.h"

namespace ssa::io {

struct HfModelConfig {
  config::ModelConfig model;
  std::optional<config::AttentionConfig> sparse_attention;  // when the file carries our settings
  std::string torch_dtype = "float32";
};

HfModelConfig parse_hf_config(const nlohmann::json& json, const std::string& origin);
HfModelConfig read_hf_config(const std::filesystem::path& config_json);

nlohmann::json to_hf_config(const config::ModelConfig& model, const config::AttentionConfig& attention,
                            const std::string& torch_dtype);

}  // namespace ssa::io
