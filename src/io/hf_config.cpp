#include "ssa/io/hf_config.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "ssa/util/error.h"

namespace ssa::io {
namespace {

using nlohmann::json;

template <class T>
T get_or(const json& j, const char* key, T fallback, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw FormatError(fmt::format("{}: key '{}' has the wrong type ({})", origin, key, it->dump()));
  }
}

template <class T>
T require(const json& j, const char* key, const std::string& origin) {
  if (!j.contains(key) || j.at(key).is_null()) throw FormatError(fmt::format("{}: missing key '{}'", origin, key));
  return get_or<T>(j, key, T{}, origin);
}

// eos_token_id may be a list in instruction-tuned checkpoints: the first entry is end of text.
int64_t token_id(const json& j, const char* key, int64_t fallback, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (it->is_array()) return it->empty() ? fallback : (*it)[0].get<int64_t>();
  return get_or<int64_t>(j, key, fallback, origin);
}

config::RopeScaling parse_rope(const json& r, const std::string& origin) {
  config::RopeScaling s;
  s.rope_type = get_or<std::string>(r, "rope_type", get_or<std::string>(r, "type", "default", origin), origin);
  if (s.rope_type != "default" && s.rope_type != "linear" && s.rope_type != "llama3" && s.rope_type != "yarn") {
    throw FormatError(fmt::format("{}: rope_type '{}' is not supported (default, linear, llama3, yarn)", origin, s.rope_type));
  }
  s.factor = get_or<double>(r, "factor", 1.0, origin);
  s.low_freq_factor = get_or<double>(r, "low_freq_factor", s.low_freq_factor, origin);
  s.high_freq_factor = get_or<double>(r, "high_freq_factor", s.high_freq_factor, origin);
  s.original_max_position_embeddings = get_or<int64_t>(r, "original_max_position_embeddings", 0, origin);
  s.beta_fast = get_or<double>(r, "beta_fast", s.beta_fast, origin);
  s.beta_slow = get_or<double>(r, "beta_slow", s.beta_slow, origin);
  if (r.contains("attention_factor") && !r["attention_factor"].is_null()) s.attention_factor = r["attention_factor"].get<double>();
  if (r.contains("mscale") && !r["mscale"].is_null()) s.mscale = r["mscale"].get<double>();
  if (r.contains("mscale_all_dim") && !r["mscale_all_dim"].is_null()) s.mscale_all_dim = r["mscale_all_dim"].get<double>();
  s.truncate = get_or<bool>(r, "truncate", true, origin);
  return s;
}

}  // namespace

HfModelConfig parse_hf_config(const json& j, const std::string& origin) {
  if (!j.is_object()) throw FormatError(origin + ": not a JSON object");
  const std::string model_type = get_or<std::string>(j, "model_type", "llama", origin);
  if (model_type != "llama") throw FormatError(fmt::format("{}: model_type '{}' is not 'llama'", origin, model_type));
  const std::string act = get_or<std::string>(j, "hidden_act", "silu", origin);
  if (act != "silu") throw FormatError(fmt::format("{}: hidden_act '{}' is not supported (silu)", origin, act));
  if (get_or<bool>(j, "attention_bias", false, origin) || get_or<bool>(j, "mlp_bias", false, origin)) {
    throw FormatError(origin + ": attention_bias / mlp_bias are not supported");
  }

  HfModelConfig out;
  auto& m = out.model;
  m.hidden_size = require<int64_t>(j, "hidden_size", origin);
  m.intermediate_size = require<int64_t>(j, "intermediate_size", origin);
  m.num_layers = require<int64_t>(j, "num_hidden_layers", origin);
  m.num_heads = require<int64_t>(j, "num_attention_heads", origin);
  m.num_kv_heads = get_or<int64_t>(j, "num_key_value_heads", m.num_heads, origin);
  if (m.num_heads <= 0) throw FormatError(origin + ": num_attention_heads must be positive");
  m.head_dim = get_or<int64_t>(j, "head_dim", m.hidden_size / m.num_heads, origin);
  m.vocab_size = require<int64_t>(j, "vocab_size", origin);
  m.max_position_embeddings = get_or<int64_t>(j, "max_position_embeddings", m.max_position_embeddings, origin);
  m.rms_norm_eps = get_or<double>(j, "rms_norm_eps", 1e-6, origin);  // transformers' LlamaConfig default
  m.init_std = get_or<double>(j, "initializer_range", 0.02, origin);
  m.tie_embeddings = get_or<bool>(j, "tie_word_embeddings", false, origin);  // LlamaConfig default
  m.bos_token_id = token_id(j, "bos_token_id", m.bos_token_id, origin);
  m.eos_token_id = token_id(j, "eos_token_id", m.eos_token_id, origin);
  m.gate = get_or<std::string>(j, "attention_gate", "none", origin);
  if (m.gate != "none" && m.gate != "headwise" && m.gate != "elementwise") {
    throw FormatError(fmt::format("{}: attention_gate '{}' is not none | headwise | elementwise", origin, m.gate));
  }

  // transformers 5 nests rope_theta inside rope_parameters; 4 keeps it at the top level.
  m.rope_theta = get_or<double>(j, "rope_theta", 10000.0, origin);
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    const auto& r = j["rope_parameters"];
    m.rope_theta = get_or<double>(r, "rope_theta", m.rope_theta, origin);
    m.rope_scaling = parse_rope(r, origin);
  } else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    m.rope_scaling = parse_rope(j["rope_scaling"], origin);
  }

  if (j.contains("sparse_attention") && j["sparse_attention"].is_object()) {
    const auto& s = j["sparse_attention"];
    config::AttentionConfig a;
    a.block_size = get_or<int64_t>(s, "block_size", a.block_size, origin);
    a.topk = get_or<int64_t>(s, "topk", a.topk, origin);
    a.selection = get_or<std::string>(s, "selection", a.selection, origin);
    a.inference = get_or<std::string>(s, "inference", a.inference, origin);
    out.sparse_attention = a;
  }
  out.torch_dtype = get_or<std::string>(j, "torch_dtype", get_or<std::string>(j, "dtype", "float32", origin), origin);
  return out;
}

HfModelConfig read_hf_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("cannot open {}", path.string()));
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("{}: invalid JSON: {}", path.string(), e.what()));
  }
  return parse_hf_config(j, path.string());
}

json to_hf_config(const config::ModelConfig& m, const config::AttentionConfig& a, const std::string& torch_dtype) {
  json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_size"] = m.hidden_size;
  j["intermediate_size"] = m.intermediate_size;
  j["num_hidden_layers"] = m.num_layers;
  j["num_attention_heads"] = m.num_heads;
  j["num_key_value_heads"] = m.num_kv_heads;
  j["head_dim"] = m.head_dim;
  j["vocab_size"] = m.vocab_size;
  j["max_position_embeddings"] = m.max_position_embeddings;
  j["rms_norm_eps"] = m.rms_norm_eps;
  j["initializer_range"] = m.init_std;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["tie_word_embeddings"] = m.tie_embeddings;
  j["bos_token_id"] = m.bos_token_id;
  j["eos_token_id"] = m.eos_token_id;
  j["rope_theta"] = m.rope_theta;
  const auto& s = m.rope_scaling;
  if (s.enabled()) {
    json r;
    r["rope_type"] = s.rope_type;
    r["factor"] = s.factor;
    if (s.rope_type == "llama3") {
      r["low_freq_factor"] = s.low_freq_factor;
      r["high_freq_factor"] = s.high_freq_factor;
    }
    if (s.original_max_position_embeddings > 0) r["original_max_position_embeddings"] = s.original_max_position_embeddings;
    if (s.rope_type == "yarn") {
      r["beta_fast"] = s.beta_fast;
      r["beta_slow"] = s.beta_slow;
      r["truncate"] = s.truncate;
      if (s.attention_factor) r["attention_factor"] = *s.attention_factor;
      if (s.mscale) r["mscale"] = *s.mscale;
      if (s.mscale_all_dim) r["mscale_all_dim"] = *s.mscale_all_dim;
    }
    j["rope_scaling"] = r;
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["torch_dtype"] = torch_dtype;
  j["attention_gate"] = m.gate;
  j["sparse_attention"] = {{"block_size", a.block_size}, {"topk", a.topk}, {"selection", a.selection},
                           {"inference", a.inference}};
  return j;
}

}  // namespace ssa::io
