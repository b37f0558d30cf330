#include "ssa/model/model_folder.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>


#include "ssa/io/atomic_file.h"
#include "ssa/io/hf_config.h"
#include "ssa/io/safetensors.h"
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
  const auto weights = io::SafetensorsCollection::open_folder(folder);
  torch::NoGradGuard no_grad;
  for (const auto& name : weights.names()) {
    const std::string file = weights.file_of(name).path().string();
    if (!params.contains(name)) {
      if (ignorable(name, hf.model)) continue;
      throw FormatError(fmt::format("{}: tensor '{}' does not belong to the model of config.json", file, name));
    }
    auto& p = params[name];
    const auto view = weights.tensor(name);
    if (view.shape != p.sizes().vec()) {
      throw FormatError(fmt::format("{}: tensor '{}' has shape [{}] but config.json implies [{}]", file, name,
                                    fmt::join(view.shape, ", "), fmt::join(p.sizes(), ", ")));
    }
    p.copy_(to_tensor(view, file).to(torch::kFloat32));
  }
  for (const auto& item : params) {
    if (!weights.find(item.key())) {
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
  // Replacing a folder deletes what it held: only ever replace a model folder or an empty one.
  if (fs::exists(folder) && !fs::is_empty(folder) && !fs::exists(folder / "config.json")) {
    throw UsageError(fmt::format("{} exists and is not a model folder: refusing to replace it", folder.string()));
  }
  const auto config_json = io::to_hf_config(model->config(), attention, dtype_name(dtype)).dump(2) + "\n";
  io::write_directory_atomic(folder, [&](const fs::path& staging) {
    io::write_file_atomic(staging / "config.json", config_json);
    write_tensor_file(staging / io::kSingleWeightsFile, tensors);
  });
}

}  // namespace ssa::model
