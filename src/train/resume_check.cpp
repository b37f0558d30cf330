#include "ssa/train/resume_check.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fmt/format.h>

#include "ssa/config/loader.h"
#include "ssa/config/schema.h"
#include "ssa/util/error.h"

namespace ssa::train {
namespace {

std::string scalar_text(const YAML::Node& node) {
  YAML::Emitter out;
  out.SetMapFormat(YAML::Flow);
  out.SetSeqFormat(YAML::Flow);
  out << node;
  return out.c_str();
}

}  // namespace

const std::vector<std::string>& model_shape_keys() {
  static const std::vector<std::string> keys = {
      "model.hidden_size", "model.intermediate_size", "model.num_layers",     "model.num_heads",
      "model.num_kv_heads", "model.head_dim",         "model.vocab_size",     "model.gate",
      "model.tie_embeddings"};
  return keys;
}

std::vector<ConfigChange> check_resume(const std::string& saved_config_yaml, const config::Config& now,
                                       const std::string& saved_fingerprint, const std::string& fingerprint,
                                       const std::string& origin) {
  config::Config saved;
  try {
    saved = config::from_yaml(YAML::Load(saved_config_yaml));
  } catch (const std::exception& e) {
    throw UsageError(fmt::format("{}: the saved configuration cannot be read by this version ({})", origin, e.what()));
  }
  std::vector<ConfigChange> changes;
  for (const auto& field : config::schema()) {
    const std::string before = scalar_text(field.emit(saved)), after = scalar_text(field.emit(now));
    if (before == after) continue;
    const auto& shape = model_shape_keys();
    if (std::find(shape.begin(), shape.end(), field.key) != shape.end()) {
      throw UsageError(fmt::format("cannot resume from {}: {} was {} and is now {} (the model shape changed)", origin,
                                   field.key, before, after));
    }
    changes.push_back({field.key, before, after});
  }
  if (saved_fingerprint != fingerprint) {
    throw UsageError(fmt::format("cannot resume from {}: the shard set changed (fingerprint {} saved, {} now; data.path "
                                 "= {})",
                                 origin, saved_fingerprint, fingerprint, now.data.path));
  }
  return changes;
}

}  // namespace ssa::train
