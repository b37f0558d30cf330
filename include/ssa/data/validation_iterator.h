// One rank's share of the validation rows, in micro-batches laid out like training steps:
// micro-batch b of rank r holds validation rows b * m * W + r * m + [0, m). Every rank gets the
// same number of micro-batches, ceil(validation_rows / (m * W)); the rows past the end are
// padding with an all-zero loss mask, so they add nothing to a masked mean loss.
#pragma once

#include <cstdint>

#include "ssa/data/loader.h"
#include "ssa/data/micro_batch.h"

namespace ssa::data {

class ValidationIterator {
 public:
  ValidationIterator(const Loader& loader, uint64_t micro_batch_rows, uint64_t world_size = 1, uint64_t rank = 0);

  uint64_t micro_batches() const { return micro_batches_; }
  // False after the last micro-batch.
  bool next(MicroBatch& batch);

 private:
  const Loader& loader_;
  uint64_t micro_batch_rows_, world_size_, rank_;
  uint64_t micro_batches_ = 0;
  uint64_t next_ = 0;
};

}  // namespace ssa::data
