#include "ssa/config/schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <optional>

#include "ssa/util/error.h"

namespace ssa::config {
namespace {

std::string describe(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a map";
  return "null";
}

[[noreturn]] void type_error(const std::string& key, const char* expected, const YAML::Node& node) {
  throw ConfigError(fmt::format("config key '{}': expected {}, got {}", key, expected, describe(node)));
}

// Decoding of one YAML value into a C++ field type, with errors naming the key.
template <class T>
struct Codec;

template <>
struct Codec<int64_t> {
  static constexpr const char* kType = "int";
  static int64_t decode(const YAML::Node& n, const std::string& key) {
    if (!n.IsScalar()) type_error(key, "an integer", n);
    const std::string& s = n.Scalar();
    try {
      size_t pos = 0;
      long long v = std::stoll(s, &pos, 10);
      if (pos == s.size()) return v;
      // Accept integral floats written like 1e6 or 8192.0.
      double d = std::stod(s, &pos);
      if (pos == s.size() && std::floor(d) == d && std::fabs(d) < 9e18) return static_cast<int64_t>(d);
    } catch (const std::exception&) {
    }
    type_error(key, "an integer", n);
  }
  static YAML::Node encode(int64_t v) { return YAML::Node(v); }
};

template <>
struct Codec<double> {
  static constexpr const char* kType = "float";
  static double decode(const YAML::Node& n, const std::string& key) {
    if (!n.IsScalar()) type_error(key, "a number", n);
    const std::string& s = n.Scalar();
    try {
      size_t pos = 0;
      double v = std::stod(s, &pos);
      if (pos == s.size() && std::isfinite(v)) return v;
    } catch (const std::exception&) {
    }
    type_error(key, "a finite number", n);
  }
  static YAML::Node encode(double v) { return YAML::Node(v); }
};

template <>
struct Codec<bool> {
  static constexpr const char* kType = "bool";
  static bool decode(const YAML::Node& n, const std::string& key) {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      if (s == "true" || s == "True" || s == "yes" || s == "on") return true;
      if (s == "false" || s == "False" || s == "no" || s == "off") return false;
    }
    type_error(key, "true or false", n);
  }
  static YAML::Node encode(bool v) { return YAML::Node(v); }
};

template <>
struct Codec<std::string> {
  static constexpr const char* kType = "string";
  static std::string decode(const YAML::Node& n, const std::string& key) {
    if (!n.IsScalar()) type_error(key, "a string", n);
    return n.Scalar();
  }
  static YAML::Node encode(const std::string& v) { return YAML::Node(v); }
};

template <class T>
struct Codec<std::vector<T>> {
  static std::string type_name() { return std::string(Codec<T>::kType) + " list"; }
  static std::vector<T> decode(const YAML::Node& n, const std::string& key) {
    std::vector<T> out;
    if (n.IsNull()) return out;
    if (!n.IsSequence()) type_error(key, "a list", n);
    for (size_t i = 0; i < n.size(); ++i) out.push_back(Codec<T>::decode(n[i], fmt::format("{}[{}]", key, i)));
    return out;
  }
  static YAML::Node encode(const std::vector<T>& v) {
    YAML::Node node(YAML::NodeType::Sequence);
    for (const auto& x : v) node.push_back(Codec<T>::encode(x));
    node.SetStyle(YAML::EmitterStyle::Flow);
    return node;
  }
};

template <class T>
std::string type_name_of() {
  if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>> ||
                std::is_same_v<T, std::vector<std::string>>) {
    return Codec<T>::type_name();
  } else {
    return Codec<T>::kType;
  }
}

class Registry {
 public:
  // `access` is a generic lambda returning a reference to the field for Config& and const Config&.
  template <class T, class Access>
  void add(std::string key, Access access, std::string doc, std::vector<std::string> choices = {}) {
    Field f;
    f.key = key;
    f.type = type_name_of<T>();
    f.doc = std::move(doc);
    f.choices = choices;
    f.assign = [access, key, choices](Config& c, const YAML::Node& n) {
      T value = Codec<T>::decode(n, key);
      if constexpr (std::is_same_v<T, std::string>) {
        if (!choices.empty() && std::find(choices.begin(), choices.end(), value) == choices.end()) {
          throw ConfigError(fmt::format("config key '{}': '{}' is not one of {}", key, value,
                                        fmt::join(choices, " | ")));
        }
      }
      access(c) = value;
    };
    f.emit = [access](const Config& c) { return Codec<T>::encode(access(c)); };
    fields_.push_back(std::move(f));
  }

  template <class T, class Access>
  void add_optional(std::string key, Access access, std::string doc) {
    Field f;
    f.key = key;
    f.type = type_name_of<T>() + " or null";
    f.doc = std::move(doc);
    f.nullable = true;
    f.assign = [access, key](Config& c, const YAML::Node& n) {
      if (n.IsNull()) {
        access(c).reset();
      } else {
        access(c) = Codec<T>::decode(n, key);
      }
    };
    f.emit = [access](const Config& c) {
      const auto& v = access(c);
      return v ? Codec<T>::encode(*v) : YAML::Node(YAML::NodeType::Null);
    };
    fields_.push_back(std::move(f));
  }

  std::vector<Field> fields_;
};

// `ACCESS(expr)` builds the generic accessor lambda for a member path of Config.
#define SSA_ACCESS(member) [](auto& c) -> auto& { return c.member; }

std::vector<Field> build_schema() {
  Registry r;
  // --- model ------------------------------------------------------------------------------
  r.add<int64_t>("model.hidden_size", SSA_ACCESS(model.hidden_size), "Width of the residual stream.");
  r.add<int64_t>("model.intermediate_size", SSA_ACCESS(model.intermediate_size), "Width of the SwiGLU MLP.");
  r.add<int64_t>("model.num_layers", SSA_ACCESS(model.num_layers), "Number of decoder layers (HF `num_hidden_layers`).");
  r.add<int64_t>("model.num_heads", SSA_ACCESS(model.num_heads), "Query heads (HF `num_attention_heads`).");
  r.add<int64_t>("model.num_kv_heads", SSA_ACCESS(model.num_kv_heads),
                 "Key/value heads (GQA); must divide `model.num_heads`. The paper's 1B uses 2, stock Llama-3.2-1B 8.");
  r.add<int64_t>("model.head_dim", SSA_ACCESS(model.head_dim), "Dimension of each attention head (even, for RoPE).");
  r.add<int64_t>("model.vocab_size", SSA_ACCESS(model.vocab_size), "Vocabulary size (Llama-3: 128256).");
  r.add<int64_t>("model.max_position_embeddings", SSA_ACCESS(model.max_position_embeddings),
                 "Written to config.json; used by `yarn` scaling when no original length is given.");
  r.add<double>("model.rope_theta", SSA_ACCESS(model.rope_theta), "RoPE base frequency.");
  r.add<std::string>("model.rope_scaling.rope_type", SSA_ACCESS(model.rope_scaling.rope_type),
                     "RoPE scaling type, HF semantics. `default` = no scaling.", {"default", "linear", "llama3", "yarn"});
  r.add<double>("model.rope_scaling.factor", SSA_ACCESS(model.rope_scaling.factor),
                "Context extension factor (`linear`, `llama3`, `yarn`).");
  r.add<double>("model.rope_scaling.low_freq_factor", SSA_ACCESS(model.rope_scaling.low_freq_factor),
                "`llama3`: wavelengths above original_max_position_embeddings / low_freq_factor are divided by factor.");
  r.add<double>("model.rope_scaling.high_freq_factor", SSA_ACCESS(model.rope_scaling.high_freq_factor),
                "`llama3`: wavelengths below original_max_position_embeddings / high_freq_factor are kept.");
  r.add<int64_t>("model.rope_scaling.original_max_position_embeddings",
                 SSA_ACCESS(model.rope_scaling.original_max_position_embeddings),
                 "Pretraining context length the scaling starts from (`llama3`, `yarn`); 0 = unset.");
  r.add<double>("model.rope_scaling.beta_fast", SSA_ACCESS(model.rope_scaling.beta_fast), "`yarn`: fast boundary (rotations).");
  r.add<double>("model.rope_scaling.beta_slow", SSA_ACCESS(model.rope_scaling.beta_slow), "`yarn`: slow boundary (rotations).");
  r.add_optional<double>("model.rope_scaling.attention_factor", SSA_ACCESS(model.rope_scaling.attention_factor),
                         "`yarn`: cos/sin multiplier; null = 0.1 ln(factor) + 1 (or the mscale ratio).");
  r.add_optional<double>("model.rope_scaling.mscale", SSA_ACCESS(model.rope_scaling.mscale), "`yarn`: mscale (DeepSeek style); null = unset.");
  r.add_optional<double>("model.rope_scaling.mscale_all_dim", SSA_ACCESS(model.rope_scaling.mscale_all_dim),
                         "`yarn`: mscale_all_dim; null = unset.");
  r.add<bool>("model.rope_scaling.truncate", SSA_ACCESS(model.rope_scaling.truncate), "`yarn`: round the correction range to integers.");
  r.add<double>("model.rms_norm_eps", SSA_ACCESS(model.rms_norm_eps), "RMSNorm epsilon.");
  r.add<double>("model.init_std", SSA_ACCESS(model.init_std), "Standard deviation of the N(0, std) init of Linear and Embedding weights.");
  r.add<std::string>("model.gate", SSA_ACCESS(model.gate),
                     "Attention output gate: `headwise` sigmoid (hidden -> num_heads, the paper's), `elementwise` "
                     "(hidden -> num_heads*head_dim) or `none` (plain Llama).",
                     {"none", "headwise", "elementwise"});
  r.add<bool>("model.tie_embeddings", SSA_ACCESS(model.tie_embeddings), "Share the input embedding with the LM head.");
  r.add<int64_t>("model.bos_token_id", SSA_ACCESS(model.bos_token_id), "Beginning-of-text token id (config.json).");
  r.add<int64_t>("model.eos_token_id", SSA_ACCESS(model.eos_token_id), "End-of-text token id (config.json, packing).");
  // --- attention --------------------------------------------------------------------------
  r.add<int64_t>("attention.block_size", SSA_ACCESS(attention.block_size), "Tokens per key block of sparse attention (Bs).");
  r.add<int64_t>("attention.topk", SSA_ACCESS(attention.topk),
                 "Blocks attended per query, the current block included (receptive field = topk * block_size).");
  r.add<std::string>("attention.selection", SSA_ACCESS(attention.selection),
                     "`group`: one selection per KV head from the group's summed per-head softmax (the paper's code); "
                     "`head`: one per query head from raw dot products (MoonshotAI MoBA).",
                     {"group", "head"});
  r.add<std::string>("attention.inference", SSA_ACCESS(attention.inference),
                     "Attention used by `score`, `eval` and `generate` unless the command overrides it.", {"full", "sparse"});
  r.add<std::string>("attention.backend", SSA_ACCESS(attention.backend),
                     "`auto`: CUDA kernels for CUDA tensors when built, else the ATen reference path.",
                     {"auto", "reference", "cuda"});
  r.add<int64_t>("attention.query_chunk", SSA_ACCESS(attention.query_chunk),
                 "Queries processed at once by the reference path; bounds memory at long lengths.");
  // --- ssa --------------------------------------------------------------------------------
  r.add<std::string>("ssa.method", SSA_ACCESS(ssa.method),
                     "`full` (FullAttn baseline), `sparse` (MoBA baseline) or `ssa` (both streams, aligned).",
                     {"full", "sparse", "ssa"});
  r.add<double>("ssa.p_full", SSA_ACCESS(ssa.p_full), "Probability that a micro-batch runs in full mode (`ssa` only).");
  r.add<std::string>("ssa.mode_sampling", SSA_ACCESS(ssa.mode_sampling),
                     "`per_micro_batch` (the paper) or `per_layer` (the diverging ablation).",
                     {"per_micro_batch", "per_layer"});
  r.add<std::string>("ssa.align.loss", SSA_ACCESS(ssa.align.loss), "Alignment distance.", {"smooth_l1", "l2"});
  r.add<double>("ssa.align.beta", SSA_ACCESS(ssa.align.beta), "SmoothL1 transition point.");
  r.add<double>("ssa.align.alpha", SSA_ACCESS(ssa.align.alpha), "Weight of the alignment loss: loss = CE + alpha * align.");
  r.add<std::string>("ssa.align.directions", SSA_ACCESS(ssa.align.directions),
                     "`both`, `sparsity` only (full pulled toward sg(sparse)), `commitment` only (sparse toward "
                     "sg(full)) or `none`.",
                     {"both", "sparsity", "commitment", "none"});
  return r.fields_;
}

#undef SSA_ACCESS

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

const std::vector<Field>& schema() {
  static const std::vector<Field> fields = build_schema();
  return fields;
}

const Field* find_field(const std::string& key) {
  for (const auto& f : schema()) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

bool is_group(const std::string& key) {
  const std::string prefix = key + ".";
  for (const auto& f : schema()) {
    if (f.key.compare(0, prefix.size(), prefix) == 0) return true;
  }
  return false;
}

std::string closest_key(const std::string& key) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& f : schema()) {
    size_t d = edit_distance(key, f.key);
    // A key under the wrong section (train.seed given as model.seed) matches on its last part.
    auto last = [](const std::string& k) { return k.substr(k.rfind('.') + 1); };
    if (last(key) == last(f.key)) d = std::min<size_t>(d, 1);
    if (d < best_distance) {
      best_distance = d;
      best = f.key;
    }
  }
  return best;
}

const std::vector<Section>& sections() {
  static const std::vector<Section> all = {
      {"model", "Architecture of the Llama decoder. Written to and read from the model folder's `config.json`."},
      {"attention", "Block-sparse (MoBA-style) attention: block size, budget, selection rule, inference mode."},
      {"ssa", "Training method and the SSA objective (ssa-method.md section 3)."},
  };
  return all;
}

}  // namespace ssa::config
