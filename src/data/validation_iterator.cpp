#include "ssa/data/validation_iterator.h"

#include <fmt/format.h>

#include "ssa/util/error.h"

namespace ssa::data {

ValidationIterator::ValidationIterator(const Loader& loader, uint64_t micro_batch_rows, uint64_t world_size,
                                       uint64_t rank)
    : loader_(loader), micro_batch_rows_(micro_batch_rows), world_size_(world_size), rank_(rank) {
  if (micro_batch_rows == 0 || world_size == 0 || rank >= world_size) {
    throw UsageError(fmt::format("validation micro-batch of {} rows for rank {} of {}", micro_batch_rows, rank, world_size));
  }
  const uint64_t per_batch = micro_batch_rows * world_size;
  micro_batches_ = (loader.validation_rows() + per_batch - 1) / per_batch;
}

bool ValidationIterator::next(MicroBatch& batch) {
  if (next_ >= micro_batches_) return false;
  const uint64_t first = next_ * micro_batch_rows_ * world_size_ + rank_ * micro_batch_rows_;
  batch = loader_.validation_rows(first, micro_batch_rows_);
  ++next_;
  return true;
}

}  // namespace ssa::data
