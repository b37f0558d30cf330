// Shared pieces of the trainer tests: a tiny model configuration and synthetic token shards.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "ssa/config/loader.h"
#include "ssa/data/shard_writer.h"
#include "ssa/train/shard_batch_source.h"
#include "ssa/train/trainer.h"

namespace ssa::test {

constexpr int64_t kTinyVocab = 64;
constexpr uint32_t kEos = 1;

// Documents of a repetition task: one of `patterns` random runs of `period` tokens (ids
// 2..vocab-1) repeated `repeats` times, then EOS. After the first period every token is
// predictable from the context, and with few patterns from the first token or two.
inline std::vector<std::vector<uint32_t>> copy_task_documents(int64_t documents, int64_t period, int64_t repeats,
                                                              uint32_t seed, int64_t patterns = 16) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<uint32_t> token(2, kTinyVocab - 1);
  std::vector<std::vector<uint32_t>> pool(static_cast<size_t>(patterns), std::vector<uint32_t>(period));
  for (auto& pattern : pool) {
    for (auto& t : pattern) t = token(rng);
  }
  std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
  std::vector<std::vector<uint32_t>> out;
  for (int64_t d = 0; d < documents; ++d) {
    const auto& pattern = pool[pick(rng)];
    std::vector<uint32_t> doc;
    for (int64_t r = 0; r < repeats; ++r) doc.insert(doc.end(), pattern.begin(), pattern.end());
    doc.push_back(kEos);
    out.push_back(std::move(doc));
  }
  return out;
}

inline void write_shards(const std::filesystem::path& folder, const std::vector<std::vector<uint32_t>>& documents,
                         uint64_t shard_tokens = 1 << 20) {
  data::ShardWriterOptions options;
  options.folder = folder;
  options.name = "train";
  options.token_width = 2;
  options.tokenizer = "synthetic";
  options.shard_tokens = shard_tokens;
  data::ShardWriter writer(options);
  for (const auto& doc : documents) writer.add_document(doc);
  writer.finish();
}

// Overrides for a 2-layer, 32-wide model on 32-token rows (a fraction of a second per step).
inline std::vector<std::string> tiny_overrides(const std::filesystem::path& run_dir, const std::filesystem::path& data) {
  return {"model.hidden_size=32",
          "model.intermediate_size=64",
          "model.num_layers=2",
          "model.num_heads=4",
          "model.num_kv_heads=2",
          "model.head_dim=8",
          "model.vocab_size=64",
          "model.max_position_embeddings=256",
          "model.bos_token_id=0",
          "model.eos_token_id=1",
          "attention.block_size=4",
          "attention.topk=2",
          "attention.query_chunk=64",
          "train.seq_len=32",
          "train.micro_batch_size=2",
          "train.global_batch_size=4",
          "train.steps=8",
          "train.seed=7",
          "train.run_dir=" + run_dir.string(),
          "optim.lr=3e-3",
          "schedule.type=constant",
          "schedule.warmup_steps=2",
          "checkpoint.every=4",
          "checkpoint.keep_last=10",
          "eval.every=4",
          "eval.batches=2",
          "log.every=2",
          "data.path=" + data.string(),
          "data.validation_documents=2"};
}

inline config::Config tiny_config(const std::filesystem::path& run_dir, const std::filesystem::path& data,
                                  const std::vector<std::string>& extra = {}) {
  auto overrides = tiny_overrides(run_dir, data);
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return config::load({}, overrides);
}

// The lines of a run's metrics.jsonl.
inline std::vector<nlohmann::json> read_metrics(const std::filesystem::path& run_dir) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(run_dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

// One training run of `config` in this process, quiet; `poison` injects non-finite losses.
inline train::TrainSummary run_training(const config::Config& config, const std::string& resume = "",
                                        std::function<bool(int64_t)> poison = nullptr) {
  train::ShardBatchSource data(config);
  train::TrainerOptions options;
  options.resume = resume;
  options.poison_step = std::move(poison);
  options.console = false;
  return train::train(config, data, options);
}

}  // namespace ssa::test
