#include "ssa/config/loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sstream>

#include "ssa/config/schema.h"
#include "ssa/util/error.h"

namespace ssa::config {
namespace {

constexpr const char* kIncludeKey = "include";

// Deep merge: maps merge key by key, anything else in `top` replaces what `base` had.
YAML::Node merge(const YAML::Node& base, const YAML::Node& top) {
  if (!base.IsMap() || !top.IsMap()) return YAML::Clone(top);
  YAML::Node out = YAML::Clone(base);
  for (const auto& item : top) {
    const std::string key = item.first.as<std::string>();
    out[key] = out[key] ? merge(out[key], item.second) : YAML::Clone(item.second);
  }
  return out;
}

YAML::Node parse_file(const std::string& path) {
  if (!std::filesystem::exists(path)) throw ConfigError(fmt::format("config file '{}' does not exist", path));
  YAML::Node node;
  try {
    node = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("config file '{}': line {}, column {}: {}", path, e.mark.line + 1,
                                  e.mark.column + 1, e.msg));
  }
  if (node.IsNull()) return YAML::Node(YAML::NodeType::Map);
  if (!node.IsMap()) throw ConfigError(fmt::format("config file '{}': the top level must be a map of sections", path));
  return node;
}

// A file's tree with its `include:` files (paths relative to the file, merged in order, the file
// itself last) resolved recursively. `chain` holds the files being expanded, to report cycles.
YAML::Node load_file(const std::string& path, std::vector<std::string>& chain) {
  const std::string canonical = std::filesystem::exists(path) ? std::filesystem::canonical(path).string() : path;
  if (std::find(chain.begin(), chain.end(), canonical) != chain.end()) {
    throw ConfigError(fmt::format("config file '{}' includes itself (through {})", path, fmt::join(chain, " -> ")));
  }
  YAML::Node node = parse_file(path);
  const YAML::Node includes = node[kIncludeKey];
  if (!includes) return node;
  if (!includes.IsScalar() && !includes.IsSequence()) {
    throw ConfigError(fmt::format("config file '{}': '{}' must be a file name or a list of them", path, kIncludeKey));
  }
  std::vector<std::string> names;
  if (includes.IsScalar()) names.push_back(includes.Scalar());
  for (const auto& name : includes) {
    if (!name.IsScalar()) throw ConfigError(fmt::format("config file '{}': '{}' entries must be file names", path, kIncludeKey));
    names.push_back(name.Scalar());
  }
  chain.push_back(canonical);
  YAML::Node tree(YAML::NodeType::Map);
  const auto folder = std::filesystem::path(path).parent_path();
  for (const auto& name : names) {
    const auto included = std::filesystem::path(name).is_absolute() ? std::filesystem::path(name) : folder / name;
    if (!std::filesystem::exists(included)) {
      throw ConfigError(fmt::format("config file '{}' includes '{}', which does not exist", path, included.string()));
    }
    tree = merge(tree, load_file(included.string(), chain));
  }
  chain.pop_back();
  node.remove(kIncludeKey);
  return merge(tree, node);
}

// `a.b.c=value` as the YAML tree {a: {b: {c: value}}}.
YAML::Node override_tree(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError(fmt::format("override '{}' is not of the form section.key=value", assignment));
  }
  const std::string key = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("override '{}': value is not valid YAML: {}", assignment, e.msg));
  }
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) {
    if (part.empty()) throw ConfigError(fmt::format("override '{}': empty component in key '{}'", assignment, key));
    parts.push_back(part);
  }
  YAML::Node tree = value;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    YAML::Node parent(YAML::NodeType::Map);
    parent[*it] = tree;
    tree = parent;
  }
  return tree;
}

[[noreturn]] void unknown_key(const std::string& key) {
  throw ConfigError(fmt::format("unknown config key '{}' (did you mean '{}'?)", key, closest_key(key)));
}

void reset_group(Config& config, const std::string& group) {
  const Config defaults;
  const std::string prefix = group + ".";
  for (const auto& f : schema()) {
    if (f.key.compare(0, prefix.size(), prefix) == 0) f.assign(config, f.emit(defaults));
  }
}

void apply(Config& config, const YAML::Node& node, const std::string& path) {
  if (const Field* field = find_field(path)) {
    if (node.IsMap()) throw ConfigError(fmt::format("config key '{}': expected a {}, got a map", path, field->type));
    field->assign(config, node);
    return;
  }
  const bool known_prefix = path.empty() || is_group(path);
  if (!known_prefix) unknown_key(path);
  if (node.IsNull()) {
    if (!path.empty()) reset_group(config, path);
    return;
  }
  if (!node.IsMap()) {
    throw ConfigError(fmt::format("config key '{}' is a section: expected a map of keys, got '{}'", path,
                                  node.IsScalar() ? node.Scalar() : "a list"));
  }
  for (const auto& item : node) {
    if (!item.first.IsScalar()) throw ConfigError(fmt::format("config section '{}' has a non-string key", path));
    const std::string key = item.first.Scalar();
    apply(config, item.second, path.empty() ? key : path + "." + key);
  }
}

void require(bool ok, const std::string& key, const std::string& message) {
  if (!ok) throw ConfigError(fmt::format("config key '{}': {}", key, message));
}

}  // namespace

Config from_yaml(const YAML::Node& tree) {
  Config config;
  apply(config, tree, "");
  validate(config);
  return config;
}

Config load(const std::vector<std::string>& files, const std::vector<std::string>& overrides) {
  YAML::Node tree(YAML::NodeType::Map);
  for (const auto& file : files) {
    std::vector<std::string> chain;
    tree = merge(tree, load_file(file, chain));
  }
  for (const auto& assignment : overrides) tree = merge(tree, override_tree(assignment));
  return from_yaml(tree);
}

void validate(const Config& c) {
  const auto& m = c.model;
  for (const auto& [key, value] :
       std::vector<std::pair<const char*, int64_t>>{{"model.hidden_size", m.hidden_size},
                                                     {"model.intermediate_size", m.intermediate_size},
                                                     {"model.num_layers", m.num_layers},
                                                     {"model.num_heads", m.num_heads},
                                                     {"model.num_kv_heads", m.num_kv_heads},
                                                     {"model.head_dim", m.head_dim},
                                                     {"model.vocab_size", m.vocab_size},
                                                     {"model.max_position_embeddings", m.max_position_embeddings}}) {
    require(value > 0, key, fmt::format("must be positive, got {}", value));
  }
  require(m.hidden_size % m.num_heads == 0, "model.hidden_size",
          fmt::format("{} is not divisible by model.num_heads = {}", m.hidden_size, m.num_heads));
  require(m.num_heads % m.num_kv_heads == 0, "model.num_heads",
          fmt::format("{} is not divisible by model.num_kv_heads = {}", m.num_heads, m.num_kv_heads));
  require(m.head_dim % 2 == 0, "model.head_dim", fmt::format("must be even for RoPE, got {}", m.head_dim));
  require(m.rope_theta > 0, "model.rope_theta", "must be positive");
  require(m.rms_norm_eps > 0, "model.rms_norm_eps", "must be positive");
  require(m.init_std > 0, "model.init_std", "must be positive");
  require(m.bos_token_id >= 0 && m.bos_token_id < m.vocab_size, "model.bos_token_id", "must be a token id below model.vocab_size");
  require(m.eos_token_id >= 0 && m.eos_token_id < m.vocab_size, "model.eos_token_id", "must be a token id below model.vocab_size");
  const auto& rs = m.rope_scaling;
  if (rs.enabled()) {
    require(rs.factor >= 1.0, "model.rope_scaling.factor", fmt::format("must be >= 1 for rope_type {}", rs.rope_type));
  }
  if (rs.rope_type == "llama3") {
    require(rs.original_max_position_embeddings > 0, "model.rope_scaling.original_max_position_embeddings",
            "must be set (> 0) for rope_type llama3");
    require(rs.high_freq_factor > rs.low_freq_factor, "model.rope_scaling.high_freq_factor",
            "must exceed model.rope_scaling.low_freq_factor");
    require(rs.low_freq_factor > 0, "model.rope_scaling.low_freq_factor", "must be positive");
  }
  if (rs.rope_type == "yarn") {
    require(rs.beta_fast > rs.beta_slow && rs.beta_slow > 0, "model.rope_scaling.beta_fast",
            "must exceed model.rope_scaling.beta_slow > 0");
  }
  require(rs.original_max_position_embeddings >= 0, "model.rope_scaling.original_max_position_embeddings",
          "must not be negative");

  const auto& a = c.attention;
  require(a.block_size >= 1, "attention.block_size", fmt::format("must be at least 1, got {}", a.block_size));
  require(a.topk >= 1, "attention.topk", fmt::format("must be at least 1, got {}", a.topk));
  require(a.query_chunk >= 1, "attention.query_chunk", fmt::format("must be at least 1, got {}", a.query_chunk));

  const auto& s = c.ssa;
  require(s.p_full >= 0.0 && s.p_full <= 1.0, "ssa.p_full", fmt::format("must be in [0, 1], got {}", s.p_full));
  require(s.align.beta > 0, "ssa.align.beta", "must be positive");
  require(s.align.alpha >= 0, "ssa.align.alpha", "must not be negative");

  const auto& t = c.train;
  for (const auto& [key, value] :
       std::vector<std::pair<const char*, int64_t>>{{"train.steps", t.steps},
                                                     {"train.seq_len", t.seq_len},
                                                     {"train.micro_batch_size", t.micro_batch_size},
                                                     {"train.global_batch_size", t.global_batch_size},
                                                     {"train.max_bad_steps", t.max_bad_steps},
                                                     {"train.activation_checkpointing_every", t.activation_checkpointing_every},
                                                     {"checkpoint.keep_last", c.checkpoint.keep_last},
                                                     {"eval.batches", c.eval.batches},
                                                     {"log.every", c.log.every}}) {
    require(value > 0, key, fmt::format("must be positive, got {}", value));
  }
  for (const auto& [key, value] :
       std::vector<std::pair<const char*, int64_t>>{{"train.global_batch_tokens", t.global_batch_tokens},
                                                     {"train.seed", t.seed},
                                                     {"schedule.warmup_steps", c.schedule.warmup_steps},
                                                     {"checkpoint.every", c.checkpoint.every},
                                                     {"checkpoint.keep_every", c.checkpoint.keep_every},
                                                     {"eval.every", c.eval.every}}) {
    require(value >= 0, key, fmt::format("must not be negative, got {}", value));
  }
  require(!t.run_dir.empty(), "train.run_dir", "must name a folder");
  const auto& d = c.data;
  require(d.weights.empty() || d.weights.size() == d.paths.size(), "data.weights",
          fmt::format("has {} entries for {} data.paths", d.weights.size(), d.paths.size()));
  for (double w : d.weights) require(w >= 0, "data.weights", "must not be negative");
  require(d.validation_fraction >= 0 && d.validation_fraction < 1, "data.validation_fraction",
          fmt::format("must be in [0, 1), got {}", d.validation_fraction));
  require(d.validation_documents >= 0, "data.validation_documents", "must not be negative");
  require(d.prefetch_depth >= 1, "data.prefetch_depth", "must be at least 1");
  if (t.global_batch_tokens > 0) {
    require(t.global_batch_tokens % t.seq_len == 0, "train.global_batch_tokens",
            fmt::format("{} is not a multiple of train.seq_len = {}", t.global_batch_tokens, t.seq_len));
  }
  const int64_t sequences = t.sequences_per_step();
  require(sequences % t.micro_batch_size == 0, t.global_batch_tokens > 0 ? "train.global_batch_tokens" : "train.global_batch_size",
          fmt::format("{} sequences per step are not a multiple of train.micro_batch_size = {}", sequences,
                      t.micro_batch_size));

  const auto& o = c.optim;
  require(o.lr > 0, "optim.lr", "must be positive");
  require(o.beta1 >= 0 && o.beta1 < 1, "optim.beta1", fmt::format("must be in [0, 1), got {}", o.beta1));
  require(o.beta2 >= 0 && o.beta2 < 1, "optim.beta2", fmt::format("must be in [0, 1), got {}", o.beta2));
  require(o.eps > 0, "optim.eps", "must be positive");
  require(o.weight_decay >= 0, "optim.weight_decay", "must not be negative");
  require(o.grad_clip >= 0, "optim.grad_clip", "must not be negative (0 disables clipping)");

  const auto& sc = c.schedule;
  require(sc.warmup_fraction >= 0 && sc.warmup_fraction <= 1, "schedule.warmup_fraction",
          fmt::format("must be in [0, 1], got {}", sc.warmup_fraction));
  require(sc.min_lr >= 0 && sc.min_lr <= o.lr, "schedule.min_lr",
          fmt::format("must be in [0, optim.lr = {}], got {}", o.lr, sc.min_lr));
  require(sc.decay_fraction > 0 && sc.decay_fraction <= 1, "schedule.decay_fraction",
          fmt::format("must be in (0, 1], got {}", sc.decay_fraction));

  const auto& di = c.dist;
  require(di.zero >= 0 && di.zero <= 2, "dist.zero", fmt::format("must be 0, 1 or 2, got {}", di.zero));
  require(di.bucket_mb > 0, "dist.bucket_mb", "must be positive");
  require(di.timeout_s > 0, "dist.timeout_s", "must be positive");
}

std::string to_yaml(const Config& config) {
  YAML::Node root(YAML::NodeType::Map);
  for (const auto& f : schema()) {
    std::vector<std::string> parts;
    std::stringstream ss(f.key);
    for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
    // yaml-cpp's operator[] on a temporary node creates the path in the parent.
    YAML::Node node = root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      if (!node[parts[i]]) node[parts[i]] = YAML::Node(YAML::NodeType::Map);
      node.reset(node[parts[i]]);
    }
    node[parts.back()] = f.emit(config);
  }
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

std::string config_hash(const Config& config) {
  // FNV-1a: a stable, dependency-free fingerprint; not a security hash.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : to_yaml(config)) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

std::string reference_markdown() {
  const Config defaults;
  std::string out =
      "# Configuration reference\n\n"
      "Generated by `ssa config reference`; a test keeps this file in sync with the schema.\n\n"
      "A run's configuration is layered: `--config a.yaml --config b.yaml` (later files win), then dotted\n"
      "overrides such as `model.num_layers=4` on the command line (win last). A file may start with\n"
      "`include: [base.yaml, ...]` (paths relative to the file): those files are merged first, in order, and\n"
      "the file's own keys win. Unknown keys, wrong types and\n"
      "impossible combinations are errors that name the key (exit code 2). `--dump-config` prints the\n"
      "resolved configuration and exits.\n";
  for (const auto& section : sections()) {
    out += fmt::format("\n## `{}`\n\n{}\n\n| key | type | default | description |\n|---|---|---|---|\n", section.name,
                       section.doc);
    for (const auto& f : schema()) {
      if (f.key.compare(0, section.name.size() + 1, section.name + ".") != 0) continue;
      YAML::Emitter e;
      e.SetMapFormat(YAML::Flow);
      e.SetSeqFormat(YAML::Flow);
      e << f.emit(defaults);
      std::string def = e.c_str();
      if (def.empty() || def == "~") def = "null";
      std::string doc = f.doc;
      if (!f.choices.empty()) doc += fmt::format(" One of: `{}`.", fmt::join(f.choices, "`, `"));
      out += fmt::format("| `{}` | {} | `{}` | {} |\n", f.key, f.type, def, doc);
    }
  }
  return out;
}

}  // namespace ssa::config
