// A background thread that builds a rank's micro-batches ahead of the training step: a bounded
// queue of `depth` ready micro-batches, in schedule order (step by step, each step's
// accumulation micro-batches in order), starting at the step whose first row is `first_row`.
// The thread's exceptions (a damaged shard, say) are rethrown by next(); destruction stops and
// joins the thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "ssa/data/loader.h"
#include "ssa/data/micro_batch.h"

namespace ssa::data {

class Prefetcher {
 public:
  // `first_row`: rows consumed before the first step (LoaderState::rows_consumed); depth 0 takes
  // the loader's prefetch_depth.
  Prefetcher(const Loader& loader, const BatchLayout& layout, uint64_t first_row, std::size_t depth = 0);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next micro-batch in schedule order; blocks until it is ready.
  MicroBatch next();

 private:
  void run();

  const Loader& loader_;
  const BatchLayout layout_;
  const uint64_t first_row_;
  const std::size_t depth_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<MicroBatch> ready_;
  std::exception_ptr error_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after everything it uses
};

}  // namespace ssa::data
