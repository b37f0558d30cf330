#include "ssa/model/model_folder.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "ssa/io/atomic_file.h"
#include "ssa/io/hf_config.h"
#include "ssa/model/tensor_file.h"
#include "ssa/util/error.h"

namespace ssa::model {
namespace fs = std::filesystem;

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  if (name == "float64") return torch::kFloat64;
  throw UsageError("dtype '" + name + "' is not one of float32 | bfloat16 | float16 | float64");
}

std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    case torch::kFloat64: return "float64";
    default: throw UsageError("unsupported model dtype");
  }
}

namespace {

// The weight files of a folder: model.safetensors, or the shards its index names.
std::vector<fs::path> weight_files(const fs::path& folder) {
  if (fs::exists(folder / "model.safetensors")) return {folder / "model.safetensors"};
  const fs::path index = folder / "model.safetensors.index.json";
  if (!fs::exists(index)) {
    throw UsageError(fmt::format("{} holds neither model.safetensors nor model.safetensors.index.json", folder.string()));
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(std::ifstream(index));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("{}: invalid JSON: {}", index.string(), e.what()));
  }
  if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
    throw FormatError(fmt::format("{}: no weight_map", index.string()));
  }
  std::set<std::string> files;
  for (const auto& item : j["weight_map"].items()) files.insert(item.value().get<std::string>());
  std::vector<fs::path> out;
  for (const auto& f : files) out.push_back(folder / f);
  return out;
}

bool ignorable(const std::string& name, const config::ModelConfig& c) {
  if (name.find("rotary_emb.inv_freq") != std::string::npos) return true;
  return name == "lm_head.weight" && c.tie_embeddings;
}

}  // namespace

LoadedModel load_model_folder(const fs::path& folder, torch::Device device, torch::ScalarType dtype) {
  if (!fs::is_directory(folder)) throw UsageError(fmt::format("model folder {} does not exist", folder.string()));
  auto hf = io::read_hf_config(folder / "config.json");
  LoadedModel out;
  out.model = LlamaForCausalLM(hf.model);
  if (hf.sparse_attention) out.attention = *hf.sparse_attention;
  out.stored_dtype = hf.torch_dtype;

  auto params = out.model->named_parameters();
  std::set<std::string> loaded;
  torch::NoGradGuard no_grad;
  for (const auto& file : weight_files(folder)) {
    for (auto& [name, tensor] : read_tensor_file(file)) {
      if (!params.contains(name)) {
        if (ignorable(name, hf.model)) continue;
        throw FormatError(fmt::format("{}: tensor '{}' does not belong to the model of config.json", file.string(), name));
      }
      auto& p = params[name];
      if (tensor.sizes() != p.sizes()) {
        throw FormatError(fmt::format("{}: tensor '{}' has shape {} but config.json implies {}", file.string(), name,
                                      fmt::join(tensor.sizes(), "x"), fmt::join(p.sizes(), "x")));
      }
      p.copy_(tensor.to(torch::kFloat32));
      loaded.insert(name);
    }
  }
  for (const auto& item : params) {
    if (!loaded.count(item.key())) {
      throw FormatError(fmt::format("{}: tensor '{}' is missing", folder.string(), item.key()));
    }
  }
  out.model->to(device, dtype);
  return out;
}

void save_model_folder(LlamaForCausalLM& model, const config::AttentionConfig& attention, const fs::path& folder,
                       torch::ScalarType dtype) {
  NamedTensors tensors;
  for (const auto& item : model->named_parameters()) {
    tensors.emplace_back(item.key(), item.value().detach().to(torch::kCPU, dtype));
  }
  const auto config_json = io::to_hf_config(model->config(), attention, dtype_name(dtype)).dump(2) + "\n";
  io::write_directory_atomic(folder, [&](const fs::path& staging) {
    io::write_file_atomic(staging / "config.json", config_json);
    write_tensor_file(staging / "model.safetensors", tensors);
  });
}

}  // namespace ssa::model
