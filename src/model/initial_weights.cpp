#include "ssa/model/initial_weights.h"

#include <fmt/format.h>

#include "ssa/io/safetensors.h"
#include "ssa/model/tensor_file.h"
#include "ssa/util/error.h"

namespace ssa::model {

void load_initial_weights(LlamaForCausalLM& model, const std::filesystem::path& folder) {
  const auto weights = io::SafetensorsCollection::open_folder(folder);
  const auto& config = model->config();
  auto params = model->named_parameters();
  const std::string origin = fmt::format("config key 'train.init_from': {}", folder.string());
  for (const auto& name : weights.names()) {
    if (params.contains(name)) continue;
    const bool ignorable = name.find("rotary_emb.inv_freq") != std::string::npos ||
                           (name == "lm_head.weight" && config.tie_embeddings);
    if (!ignorable) {
      throw ConfigError(fmt::format("{}: tensor '{}' does not belong to the configured model (model.num_layers, "
                                    "model.gate and model.tie_embeddings must match the folder's)",
                                    origin, name));
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& item : params) {
    if (!weights.find(item.key())) {
      throw ConfigError(fmt::format("{}: tensor '{}' of the configured model is missing there", origin, item.key()));
    }
    const auto view = weights.tensor(item.key());
    auto& p = item.value();
    if (view.shape != p.sizes().vec()) {
      throw ConfigError(fmt::format("{}: tensor '{}' has shape [{}] there but [{}] in the configured model", origin,
                                    item.key(), fmt::join(view.shape, ", "), fmt::join(p.sizes(), ", ")));
    }
    p.copy_(to_tensor(view, weights.file_of(item.key()).path().string()));
  }
}

}  // namespace ssa::model
