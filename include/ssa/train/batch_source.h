// Where the trainer's micro-batches come from. The trainer knows only this interface; the
// implementation over token shards and issue 4's data loader is shard_batch_source.h.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ssa/train/micro_batch.h"

namespace ssa::train {

class BatchSource {
 public:
  virtual ~BatchSource() = default;

  // The next optimizer step's micro-batches for this rank, in order (CPU tensors): `count`
  // micro-batches of `rows` rows each.
  virtual std::vector<MicroBatch> next_step(int64_t count, int64_t rows) = 0;

  // Target tokens in the loss of this rank's micro-batches of a step (a data-parallel trainer
  // adds the other ranks').
  virtual int64_t step_target_tokens(const std::vector<MicroBatch>& local) = 0;

  // The first `count` micro-batches of `rows` rows of the held-out validation split (the same
  // ones at every call).
  virtual std::vector<MicroBatch> validation(int64_t count, int64_t rows) = 0;

  // Position in the data, saved in checkpoints; restore() continues exactly there and throws
  // UsageError when the state belongs to another shard set.
  virtual nlohmann::json state() const = 0;
  virtual void restore(const nlohmann::json& state) = 0;

  // Identifies the shard set (compared on resume).
  virtual std::string fingerprint() const = 0;
};

}  // namespace ssa::train
