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
  r.add<bool>("attention.document_mask", SSA_ACCESS(attention.document_mask),
              "Training and validation: a token attends only to its own document of a packed row (documents start "
              "where position ids restart), in full and sparse attention and in block selection. `false` is the "
              "paper's released code (attention crosses document boundaries).");
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
  // --- data -------------------------------------------------------------------------------
  r.add<std::string>("data.path", SSA_ACCESS(data.path), "Folder of token shards to train on (`ssa data tokenize` output).");
  r.add<std::vector<std::string>>("data.paths", SSA_ACCESS(data.paths),
                                  "Several shard folders mixed by `data.weights`; when set, replaces `data.path`.");
  r.add<std::vector<double>>("data.weights", SSA_ACCESS(data.weights),
                             "Share of rows per entry of `data.paths` (normalised); empty = equal shares.");
  r.add<std::string>("data.format", SSA_ACCESS(data.format),
                     "Token file layout: datatrove `.ds` shards, llm.c `.bin`, or raw nanoGPT-style streams.",
                     {"datatrove", "llmc", "raw_u16", "raw_u32"});
  r.add<std::string>("data.packing", SSA_ACCESS(data.packing),
                     "`paper`: documents cut into pieces of at most seq_len - 1 tokens plus EOS, packed greedily, "
                     "the rest padded and masked (ssa-method.md section 4); `contiguous`: plain windows over the "
                     "concatenated stream.",
                     {"paper", "contiguous"});
  r.add<bool>("data.shuffle", SSA_ACCESS(data.shuffle), "Shuffle each source's documents, differently every epoch (from train.seed).");
  r.add<double>("data.validation_fraction", SSA_ACCESS(data.validation_fraction),
                "Share of each source's documents held out for validation (at least one when positive).");
  r.add<int64_t>("data.validation_documents", SSA_ACCESS(data.validation_documents),
                 "Documents of each source held out for validation; when > 0 it replaces `data.validation_fraction`.");
  r.add<int64_t>("data.prefetch_depth", SSA_ACCESS(data.prefetch_depth),
                 "Micro-batches a background thread prepares ahead of the training step.");
  // --- train ------------------------------------------------------------------------------
  r.add<std::string>("train.run_dir", SSA_ACCESS(train.run_dir),
                     "Run folder: config.yaml, train.log, metrics.jsonl, tb/ and checkpoints/.");
  r.add<int64_t>("train.steps", SSA_ACCESS(train.steps), "Optimizer steps of the run (may be raised when resuming).");
  r.add<int64_t>("train.seq_len", SSA_ACCESS(train.seq_len), "Tokens per training sequence (each row holds seq_len + 1).");
  r.add<int64_t>("train.micro_batch_size", SSA_ACCESS(train.micro_batch_size), "Sequences per rank per forward pass.");
  r.add<int64_t>("train.global_batch_size", SSA_ACCESS(train.global_batch_size),
                 "Sequences per optimizer step over all ranks; gradient accumulation = global / (micro * ranks).");
  r.add<int64_t>("train.global_batch_tokens", SSA_ACCESS(train.global_batch_tokens),
                 "Tokens per optimizer step; when > 0 it replaces `train.global_batch_size` (must be a multiple "
                 "of `train.seq_len`).");
  r.add<int64_t>("train.seed", SSA_ACCESS(train.seed), "Seed of the model initialisation, the data order and the mode sampler.");
  r.add<int64_t>("train.max_bad_steps", SSA_ACCESS(train.max_bad_steps),
                 "Steps in a row with a non-finite loss or gradient norm (each skipped) before the run stops "
                 "with a checkpoint of the last good state.");
  r.add<std::string>("train.precision", SSA_ACCESS(train.precision),
                     "`bf16`: bf16 compute with fp32 master weights, gradients and optimizer state; `fp32`; "
                     "`auto`: bf16 on CUDA, fp32 on CPU.",
                     {"auto", "bf16", "fp32"});
  r.add<std::string>("train.device", SSA_ACCESS(train.device), "`auto`: CUDA when available, else CPU.",
                     {"auto", "cpu", "cuda"});
  r.add<std::string>("train.activation_checkpointing", SSA_ACCESS(train.activation_checkpointing),
                     "Recompute decoder layers in the backward pass instead of keeping their activations: "
                     "`none`, `full` (every layer) or `selective` (every N-th layer).",
                     {"none", "full", "selective"});
  r.add<int64_t>("train.activation_checkpointing_every", SSA_ACCESS(train.activation_checkpointing_every),
                 "`selective`: checkpoint layers 0, N, 2N, ...");
  r.add<bool>("train.activation_checkpointing_keep_attention",
              SSA_ACCESS(train.activation_checkpointing_keep_attention),
              "A checkpointed layer keeps the output and softmax statistics of its fused attention kernels "
              "(cuDNN, FlashAttention, the block-sparse kernels) from its first run, so that its recomputation "
              "does not attend again; costs the memory of those outputs (2 x B x T x Hq x D bytes per layer and "
              "stream in bf16, plus a float32 log-sum-exp of B x T x Hq). The block selection is kept either way.");
  r.add<bool>("train.fused_kernels", SSA_ACCESS(train.fused_kernels),
              "RMSNorm, RoPE, SwiGLU, the attention output gate, the alignment loss and the cross entropy "
              "through this project's CUDA kernels (bf16 on a GPU; one pass each way); false: eager ATen ops, "
              "for comparison. No effect on the CPU.");
  r.add<std::string>("train.init_from", SSA_ACCESS(train.init_from),
                     "Model folder (or checkpoint folder) whose weights start the run instead of the random init: "
                     "weights only, with a fresh optimizer, schedule and data position; shapes must match `model`, "
                     "RoPE settings may differ. Ignored when the run resumes from its own checkpoint.");
  // --- optim ------------------------------------------------------------------------------
  r.add<double>("optim.lr", SSA_ACCESS(optim.lr), "Peak learning rate (after warmup).");
  r.add<double>("optim.beta1", SSA_ACCESS(optim.beta1), "AdamW first-moment decay.");
  r.add<double>("optim.beta2", SSA_ACCESS(optim.beta2), "AdamW second-moment decay.");
  r.add<double>("optim.eps", SSA_ACCESS(optim.eps), "AdamW denominator epsilon.");
  r.add<double>("optim.weight_decay", SSA_ACCESS(optim.weight_decay),
                "Decoupled weight decay of matrices; norm weights are never decayed.");
  r.add<bool>("optim.embedding_weight_decay", SSA_ACCESS(optim.embedding_weight_decay),
              "Decay the token embedding (and an untied LM head) too, as HF Trainer does (the paper's setup).");
  r.add<double>("optim.grad_clip", SSA_ACCESS(optim.grad_clip),
                "Clip the global gradient L2 norm to this value; 0 = no clipping.");
  r.add<bool>("optim.fused", SSA_ACCESS(optim.fused),
              "AdamW through this project's multi-tensor kernel (`kernels/adamw.cu`, CUDA builds): one pass "
              "over the weights, gradients (bf16 or fp32) and moments that also writes the bf16 compute "
              "weights; false: one update per tensor from ATen ops. Same arithmetic; no effect on the CPU.");
  // --- schedule ---------------------------------------------------------------------------
  r.add<std::string>("schedule.type", SSA_ACCESS(schedule.type),
                     "Learning rate after the linear warmup: `cosine` or `linear` decay to `schedule.min_lr` over the "
                     "remaining steps, `wsd` (constant, then decay over the last `schedule.decay_fraction`), or "
                     "`constant`.",
                     {"cosine", "linear", "wsd", "constant"});
  r.add<int64_t>("schedule.warmup_steps", SSA_ACCESS(schedule.warmup_steps),
                 "Linear warmup steps; when 0, `schedule.warmup_fraction` of `train.steps` (rounded).");
  r.add<double>("schedule.warmup_fraction", SSA_ACCESS(schedule.warmup_fraction),
                "Warmup as a share of `train.steps` (used when `schedule.warmup_steps` is 0).");
  r.add<double>("schedule.min_lr", SSA_ACCESS(schedule.min_lr), "Learning rate at the end of the decay.");
  r.add<double>("schedule.decay_fraction", SSA_ACCESS(schedule.decay_fraction),
                "`wsd`: share of `train.steps` at the end spent decaying.");
  r.add<std::string>("schedule.decay_shape", SSA_ACCESS(schedule.decay_shape),
                     "`wsd`: decay curve from the peak to `schedule.min_lr`: `linear`, `sqrt` (1 - sqrt of "
                     "progress) or `cosine`.",
                     {"linear", "sqrt", "cosine"});
  // --- checkpoint -------------------------------------------------------------------------
  r.add<int64_t>("checkpoint.every", SSA_ACCESS(checkpoint.every),
                 "Steps between checkpoints; 0 = only the one written when the run ends (always written).");
  r.add<int64_t>("checkpoint.keep_last", SSA_ACCESS(checkpoint.keep_last), "Newest checkpoints kept (at least 1).");
  r.add<int64_t>("checkpoint.keep_every", SSA_ACCESS(checkpoint.keep_every),
                 "Checkpoints at multiples of this step count are never deleted; 0 = none.");
  // --- eval -------------------------------------------------------------------------------
  r.add<int64_t>("eval.every", SSA_ACCESS(eval.every),
                 "Steps between validations on the held-out split (loss and perplexity under full and sparse "
                 "attention); 0 = never.");
  r.add<int64_t>("eval.batches", SSA_ACCESS(eval.batches), "Micro-batches of the validation split per validation.");
  // --- log --------------------------------------------------------------------------------
  r.add<int64_t>("log.every", SSA_ACCESS(log.every), "Steps between console lines (metrics.jsonl gets every step).");
  r.add<bool>("log.tensorboard", SSA_ACCESS(log.tensorboard), "Write TensorBoard event files under `train.run_dir/tb/`.");
  // --- dist -------------------------------------------------------------------------------
  r.add<int64_t>("dist.zero", SSA_ACCESS(dist.zero),
                 "ZeRO stage: 0 = every rank keeps the whole optimizer state; 1 = the AdamW state and the fp32 "
                 "master update are sharded over the ranks (gradients reduce-scattered, parameters all-gathered); "
                 "2 = the gradients are sharded too (reduce-scattered after every micro-batch).");
  r.add<std::string>("dist.reduce_dtype", SSA_ACCESS(dist.reduce_dtype),
                     "Dtype the gradients travel in between ranks (they are summed locally in fp32 either way).",
                     {"fp32", "bf16"});
  r.add<double>("dist.bucket_mb", SSA_ACCESS(dist.bucket_mb),
                "MiB of fp32 gradients per reduction bucket; a bucket is reduced as soon as the backward pass has "
                "produced all its gradients.");
  r.add<int64_t>("dist.timeout_s", SSA_ACCESS(dist.timeout_s),
                 "Seconds a rank waits for the others (rendezvous, collectives, checkpoint barriers) before it "
                 "exits with code 5; must exceed the longest step and checkpoint save.");
  r.add<std::string>("dist.backend", SSA_ACCESS(dist.backend),
                     "Collective backend: `auto` = NCCL on CUDA, Gloo on CPU.", {"auto", "nccl", "gloo"});
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
      {"data", "Where the training tokens come from: a folder of token shards, read in a deterministic, resumable order."},
      {"train",
       "The training run (`ssa train`): its folder, length, batch geometry (accumulation is derived from the global "
       "batch, the micro-batch and the number of ranks), seed, precision, activation checkpointing and the "
       "divergence guard."},
      {"optim",
       "AdamW on fp32 master weights with decoupled weight decay (never on norm weights) and global "
       "gradient-norm clipping."},
      {"schedule",
       "Learning rate per step: linear warmup from 0 to `optim.lr`, then the decay of `schedule.type` down to "
       "`schedule.min_lr`. Step s (0-based) of warmup W gets lr * (s + 1) / W."},
      {"checkpoint",
       "Checkpoints under `train.run_dir/checkpoints/step-XXXXXXXX/`: a model folder loadable by `ssa score` and "
       "`ssa eval`, the optimizer state, trainer_state.json and a DONE marker; `checkpoints/latest` names the "
       "newest. One is always written when a run ends."},
      {"eval", "Validation during training on the loader's held-out split."},
      {"log", "Console lines (rank 0), metrics.jsonl (every step) and TensorBoard event files."},
      {"dist",
       "Data-parallel training when the process is started by torchrun or srun (RANK, WORLD_SIZE, ... or the "
       "SLURM variables; docs/distributed.md). One process without those variables ignores this section."},
  };
  return all;
}

}  // namespace ssa::config
