#include "ssa/train/shard_batch_source.h"

#include <fmt/format.h>

#include "ssa/data/loader_state.h"
#include "ssa/data/validation_iterator.h"
#include "ssa/util/error.h"

namespace ssa::train {

data::LoaderOptions loader_options(const config::Config& c) {
  data::LoaderOptions o;
  if (!c.data.paths.empty()) {
    for (const auto& p : c.data.paths) o.paths.emplace_back(p);
    o.weights = c.data.weights;
  } else {
    if (c.data.path.empty()) throw ConfigError("config key 'data.path': no training data given (a shard folder)");
    o.paths.emplace_back(c.data.path);
  }
  o.format = data::parse_shard_format(c.data.format);
  o.packing = data::parse_packing(c.data.packing);
  o.seq_len = static_cast<uint64_t>(c.train.seq_len);
  o.seed = static_cast<uint64_t>(c.train.seed);
  o.shuffle = c.data.shuffle;
  if (c.data.validation_documents > 0) {
    o.validation_documents = static_cast<uint64_t>(c.data.validation_documents);
  } else {
    o.validation_fraction = c.data.validation_fraction;
  }
  o.prefetch_depth = static_cast<std::size_t>(c.data.prefetch_depth);
  o.eos_id = static_cast<uint32_t>(c.model.eos_token_id);
  o.vocab_size = static_cast<uint64_t>(c.model.vocab_size);
  return o;
}

MicroBatch to_micro_batch(const data::MicroBatch& rows) {
  const auto shape = std::vector<int64_t>{static_cast<int64_t>(rows.rows), static_cast<int64_t>(rows.seq_len)};
  const auto as_int64 = [&](const std::vector<int32_t>& values) {
    return torch::from_blob(const_cast<int32_t*>(values.data()), shape, torch::kInt32).to(torch::kInt64);
  };
  MicroBatch batch;
  batch.inputs = as_int64(rows.input_ids);
  batch.positions = as_int64(rows.position_ids);
  const auto mask = torch::from_blob(const_cast<uint8_t*>(rows.loss_mask.data()), shape, torch::kUInt8).to(torch::kBool);
  batch.targets = as_int64(rows.target_ids).masked_fill(mask.logical_not(), MicroBatch::kIgnoreTarget);
  batch.target_tokens = static_cast<int64_t>(rows.target_tokens);
  return batch;
}

ShardBatchSource::ShardBatchSource(const config::Config& config, int64_t rank, int64_t world)
    : loader_(loader_options(config)), rank_(rank), world_(world) {}

ShardBatchSource::~ShardBatchSource() = default;

std::vector<MicroBatch> ShardBatchSource::next_step(int64_t count, int64_t rows) {
  const data::BatchLayout layout{static_cast<uint64_t>(count * rows * world_), static_cast<uint64_t>(rows),
                                 static_cast<uint64_t>(world_), static_cast<uint64_t>(rank_)};
  if (!prefetcher_ || layout.global_batch_rows != layout_.global_batch_rows ||
      layout.micro_batch_rows != layout_.micro_batch_rows) {
    layout.check();
    layout_ = layout;
    prefetcher_.reset();
    prefetcher_ = std::make_unique<data::Prefetcher>(loader_, layout_, rows_consumed_);
  }
  std::vector<MicroBatch> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out.push_back(to_micro_batch(prefetcher_->next()));
  rows_consumed_ += layout_.global_batch_rows;
  return out;
}

int64_t ShardBatchSource::step_target_tokens(const std::vector<MicroBatch>& local) {
  int64_t total = 0;
  for (const auto& batch : local) total += batch.target_tokens;
  return total;
}

std::vector<MicroBatch> ShardBatchSource::validation(int64_t count, int64_t rows) {
  data::ValidationIterator it(loader_, static_cast<uint64_t>(rows), static_cast<uint64_t>(world_),
                              static_cast<uint64_t>(rank_));
  std::vector<MicroBatch> out;
  data::MicroBatch batch;
  while (static_cast<int64_t>(out.size()) < count && it.next(batch)) out.push_back(to_micro_batch(batch));
  return out;
}

nlohmann::json ShardBatchSource::state() const { return loader_.state(rows_consumed_).to_json(); }

void ShardBatchSource::restore(const nlohmann::json& state) {
  rows_consumed_ = loader_.resume(data::LoaderState::from_json(state));
  prefetcher_.reset();
}

std::string ShardBatchSource::fingerprint() const { return loader_.fingerprint(); }

}  // namespace ssa::train
