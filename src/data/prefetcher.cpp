#include "ssa/data/prefetcher.h"

#include "ssa/util/error.h"

namespace ssa::data {

Prefetcher::Prefetcher(const Loader& loader, const BatchLayout& layout, uint64_t first_row, std::size_t depth)
    : loader_(loader),
      layout_((layout.check(), layout)),
      first_row_(first_row),
      depth_(depth > 0 ? depth : std::max<std::size_t>(loader.options().prefetch_depth, 1)),
      thread_([this] { run(); }) {}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void Prefetcher::run() {
  const uint64_t accumulation = layout_.accumulation_steps();
  try {
    for (uint64_t k = 0;; ++k) {
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return stopping_ || ready_.size() < depth_; });
        if (stopping_) return;
      }
      const uint64_t step_first_row = first_row_ + (k / accumulation) * layout_.global_batch_rows;
      MicroBatch batch = loader_.micro_batch(layout_, step_first_row, k % accumulation);
      {
        std::lock_guard lock(mutex_);
        ready_.push_back(std::move(batch));
      }
      changed_.notify_all();
    }
  } catch (...) {
    {
      std::lock_guard lock(mutex_);
      error_ = std::current_exception();
    }
    changed_.notify_all();
  }
}

MicroBatch Prefetcher::next() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return !ready_.empty() || error_; });
  if (ready_.empty()) std::rethrow_exception(error_);
  MicroBatch batch = std::move(ready_.front());
  ready_.pop_front();
  lock.unlock();
  changed_.notify_all();
  return batch;
}

}  // namespace ssa::data
