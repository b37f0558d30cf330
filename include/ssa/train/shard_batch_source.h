// The trainer's batches from token shards: issue 4's data loader (deterministic global row
// order, state = rows consumed) with its background prefetcher, rows turned into tensors.
#pragma once

#include <memory>

#include "ssa/config/config.h"
#include "ssa/data/loader.h"
#include "ssa/data/prefetcher.h"
#include "ssa/train/batch_source.h"

namespace ssa::train {

// The loader options of a run configuration (data.*, train.seq_len, train.seed, model.eos_token_id).
data::LoaderOptions loader_options(const config::Config& config);

// A loader's micro-batch as tensors: targets outside the loss mask become kIgnoreTarget.
MicroBatch to_micro_batch(const data::MicroBatch& rows);

class ShardBatchSource : public BatchSource {
 public:
  // Opens the shards (UsageError / FormatError as the loader). `rank` of `world` ranks.
  ShardBatchSource(const config::Config& config, int64_t rank = 0, int64_t world = 1);
  ~ShardBatchSource() override;

  std::vector<MicroBatch> next_step(int64_t count, int64_t rows) override;
  int64_t step_target_tokens(const std::vector<MicroBatch>& local) override;
  std::vector<MicroBatch> validation(int64_t count, int64_t rows) override;
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;
  std::string fingerprint() const override;

 private:
  data::Loader loader_;
  int64_t rank_, world_;
  uint64_t rows_consumed_ = 0;
  std::unique_ptr<data::Prefetcher> prefetcher_;  // started at the first step, from rows_consumed_
  data::BatchLayout layout_;
};

}  // namespace ssa::train
