// The resolved run configuration: one plain struct per YAML section. Defaults here are the
// documented defaults (docs/configuration.md is generated from the schema in schema.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ssa::config {

// HF `rope_scaling` / `rope_parameters` map. rope_type "default" means no scaling.
struct RopeScaling {
  std::string rope_type = "default";  // default | linear | llama3 | yarn
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama3 and yarn; 0 = unset (yarn then falls back to model.max_position_embeddings)
  int64_t original_max_position_embeddings = 0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> attention_factor;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  bool truncate = true;

  bool enabled() const { return rope_type != "default"; }
};

struct ModelConfig {
  int64_t hidden_size = 2048;
  int64_t intermediate_size = 8192;
  int64_t num_layers = 16;
  int64_t num_heads = 32;
  int64_t num_kv_heads = 8;
  int64_t head_dim = 64;
  int64_t vocab_size = 128256;
  int64_t max_position_embeddings = 131072;
  double rope_theta = 500000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-5;
  double init_std = 0.02;
  std::string gate = "headwise";  // none | headwise | elementwise
  bool tie_embeddings = true;
  int64_t bos_token_id = 128000;
  int64_t eos_token_id = 128001;

  int64_t group_size() const { return num_heads / num_kv_heads; }
};

// Block-sparse attention (MoBA style) and how the model attends at inference.
struct AttentionConfig {
  int64_t block_size = 16;
  int64_t topk = 16;                 // blocks per query, the current block included
  std::string selection = "group";   // group | head
  std::string inference = "sparse";  // full | sparse: the mode of eval/score/generate
  std::string backend = "auto";      // auto | reference | cuda
  int64_t query_chunk = 512;         // queries per chunk on the reference path (bounds memory)
  bool document_mask = false;        // training: no attention across the documents of a packed row
};

struct SsaAlignConfig {
  std::string loss = "smooth_l1";  // smooth_l1 | l2
  double beta = 1.0;
  double alpha = 10.0;
  std::string directions = "both";  // both | sparsity | commitment | none
};

struct SsaConfig {
  std::string method = "ssa";                  // full | sparse | ssa
  double p_full = 0.5;
  std::string mode_sampling = "per_micro_batch";  // per_micro_batch | per_layer
  SsaAlignConfig align;
};

// Token shards the trainer reads (issue 4's loader).
struct DataConfig {
  std::string path;                  // a shard folder
  std::vector<std::string> paths;    // a weighted mixture of folders (replaces path when set)
  std::vector<double> weights;       // mixture shares, one per entry of paths
  std::string format = "datatrove";  // datatrove | llmc | raw_u16 | raw_u32
  std::string packing = "paper";     // paper | contiguous
  bool shuffle = true;
  double validation_fraction = 0.001;  // held-out documents of each source
  int64_t validation_documents = 0;    // > 0 replaces validation_fraction
  int64_t prefetch_depth = 4;          // micro-batches prepared ahead
};

// The training run: where it writes, how long it runs, batch geometry, precision.
struct TrainConfig {
  std::string run_dir = "runs/ssa";
  int64_t steps = 31800;               // optimizer steps
  int64_t seq_len = 8192;              // tokens per sequence (rows hold seq_len + 1)
  int64_t micro_batch_size = 1;        // sequences per rank per forward
  int64_t global_batch_size = 384;     // sequences per optimizer step over all ranks
  int64_t global_batch_tokens = 0;     // > 0: replaces global_batch_size (tokens / seq_len)
  int64_t seed = 0;
  int64_t max_bad_steps = 5;           // non-finite steps in a row before the run stops
  std::string precision = "auto";      // auto | bf16 | fp32
  std::string device = "auto";         // auto | cpu | cuda
  std::string activation_checkpointing = "none";  // none | full | selective
  int64_t activation_checkpointing_every = 2;      // selective: every N-th layer
  bool activation_checkpointing_keep_attention = true;  // checkpointed layers keep their attention results
  std::string init_from;               // model folder whose weights start a fresh run ("" = random init)
  bool fused_kernels = true;           // this project's CUDA kernels for the memory-bound ops where they apply

  // Sequences per optimizer step after global_batch_tokens is applied.
  int64_t sequences_per_step() const {
    return global_batch_tokens > 0 ? global_batch_tokens / seq_len : global_batch_size;
  }
};

struct OptimConfig {
  double lr = 1e-3;  // peak learning rate
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool embedding_weight_decay = true;
  double grad_clip = 1.0;  // max global gradient norm; 0 = no clipping
  bool fused = true;       // LibTorch's multi-tensor fused AdamW kernel where it applies (CUDA)
};

struct ScheduleConfig {
  std::string type = "cosine";  // cosine | linear | wsd | constant
  int64_t warmup_steps = 0;     // > 0 replaces warmup_fraction
  double warmup_fraction = 0.01;
  double min_lr = 0.0;
  double decay_fraction = 0.2;        // wsd: share of the steps spent decaying
  std::string decay_shape = "sqrt";   // wsd: linear | sqrt (1 - sqrt) | cosine
};

struct CheckpointConfig {
  int64_t every = 1000;   // steps; 0 = only at the end of the run
  int64_t keep_last = 3;  // newest checkpoints kept
  int64_t keep_every = 0; // steps; checkpoints at multiples are never deleted; 0 = none
};

// In-training validation (the held-out split).
struct EvalConfig {
  int64_t every = 1000;  // steps; 0 = never
  int64_t batches = 16;  // micro-batches of the validation split per evaluation
};

struct LogConfig {
  int64_t every = 10;  // steps between console lines
  bool tensorboard = true;
};

// Data-parallel training over several processes (docs/distributed.md); ignored by one process.
struct DistConfig {
  int64_t zero = 0;                  // 0: replicated optimizer | 1: sharded optimizer state | 2: also sharded gradients
  std::string reduce_dtype = "fp32";  // fp32 | bf16: dtype of the gradient reduction
  double bucket_mb = 25.0;           // MiB of gradients per reduction bucket
  int64_t timeout_s = 600;           // seconds a collective may wait for the other ranks
  std::string backend = "auto";      // auto (nccl on CUDA, gloo on CPU) | nccl | gloo
};

struct Config {
  ModelConfig model;
  AttentionConfig attention;
  SsaConfig ssa;
  DataConfig data;
  TrainConfig train;
  OptimConfig optim;
  ScheduleConfig schedule;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  LogConfig log;
  DistConfig dist;
};

}  // namespace ssa::config
