// The training data loader: random access to an endless, deterministic sequence of packed rows.
//
// Global row g is a pure function of (g, options, shard sets): the mixture schedule names the
// source and its local row; each source's rows run through epochs, an epoch being that source's
// training documents in an order shuffled by (seed, source, epoch) and packed (row_packing.h).
// So the loader state is only the number of rows consumed (LoaderState), and a run resumed with
// any number of data-parallel ranks, or any batch size, continues exactly (BatchLayout).
//
// Costs (docs/data-formats.md): opening reads every datatrove index once (8 bytes per document)
// or scans index-less streams once; each epoch of a source is planned in one pass over its
// document lengths (lazily, when first reached) and kept at about one byte per row.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ssa/data/loader_options.h"
#include "ssa/data/loader_state.h"
#include "ssa/data/micro_batch.h"
#include "ssa/data/row_packing.h"
#include "ssa/data/shard_set.h"

namespace ssa::data {

class Loader {
 public:
  // Opens and checks every source and plans the first epoch of each. Throws UsageError for bad
  // options or a source without training rows, FormatError for damaged shards.
  explicit Loader(LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  const LoaderOptions& options() const;
  uint64_t seq_len() const;
  std::size_t source_count() const;
  const ShardSet& source(std::size_t k) const;
  uint64_t validation_documents(std::size_t k) const;
  // Rows in epoch `epoch` of source k (plans that epoch if needed).
  uint64_t epoch_rows(std::size_t k, uint64_t epoch) const;

  // Training rows; thread-safe.
  Row row(uint64_t global_row) const;
  MicroBatch rows(uint64_t first_row, uint64_t count) const;
  MicroBatch micro_batch(const BatchLayout& layout, uint64_t step_first_row, uint64_t micro) const;

  // Validation rows: every source's held-out documents packed the same way, in storage order,
  // sources interleaved by weight until each runs out. Rows from validation_rows() on are
  // padding (EOS tokens, loss mask 0), so every rank can be given the same number of batches.
  uint64_t validation_rows() const;
  Row validation_row(uint64_t index) const;
  MicroBatch validation_rows(uint64_t first_row, uint64_t count) const;

  const std::string& fingerprint() const;
  LoaderState state(uint64_t rows_consumed) const;
  // Checks that `state` was made by a loader with the same shard sets and row order; returns its
  // rows_consumed. Throws UsageError naming what changed.
  uint64_t resume(const LoaderState& state) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ssa::data
