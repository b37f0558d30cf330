// Model folders in HF layout: config.json + model.safetensors (or shards with
// model.safetensors.index.json). A real Llama-3.2-1B folder from the HF hub loads as it is.
#pragma once

#include <filesystem>

#include "ssa/compat/torch_compat.h"
#include "ssa/config/config.h"
#include "ssa/model/llama.h"

namespace ssa::model {

struct LoadedModel {
  LlamaForCausalLM model{nullptr};
  config::AttentionConfig attention;  // the folder's sparse-attention settings, or defaults
  std::string stored_dtype;           // config.json's torch_dtype
};

// Loads weights (any of BF16, F16, F32, F64) converted to `dtype` on `device`. Every parameter
// must be present with its shape; unknown tensors are errors (the rotary inv_freq buffer and a
// redundant lm_head.weight of a tied model are ignored).
LoadedModel load_model_folder(const std::filesystem::path& folder, torch::Device device = torch::kCPU,
                              torch::ScalarType dtype = torch::kFloat32);

// Writes the folder atomically (a temporary folder renamed into place): config.json (HF keys
// plus `attention_gate` and `sparse_attention`) and model.safetensors in `dtype`.
void save_model_folder(LlamaForCausalLM& model, const config::AttentionConfig& attention,
                       const std::filesystem::path& folder, torch::ScalarType dtype = torch::kFloat32);

// "float32" | "bfloat16" | "float16" | "float64" <-> ScalarType.
torch::ScalarType parse_dtype(const std::string& name);
std::string dtype_name(torch::ScalarType dtype);

}  // namespace ssa::model
