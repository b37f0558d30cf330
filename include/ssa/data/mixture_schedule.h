// Which data source each global row comes from, for a weighted mixture of sources
// (nanotron-style blending): row n goes to the source k with the largest deficit
// w_k * (n + 1) - rows_k(n) (ties to the lower k), where rows_k(n) counts the rows source k got
// among rows 0..n-1. After any n rows every source has had within one row of its share
// w_k * n. Random access: the counts are kept every 1024 rows (extended on demand, thread-safe),
// and a lookup replays at most 1023 choices.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace ssa::data {

struct SourceRow {
  std::size_t source;
  uint64_t row;  // index among that source's rows
};

class MixtureSchedule {
 public:
  // Weights must be positive and finite; they are normalised (UsageError otherwise).
  explicit MixtureSchedule(std::vector<double> weights);

  std::size_t sources() const { return weights_.size(); }
  const std::vector<double>& weights() const { return weights_; }

  SourceRow locate(uint64_t global_row) const;
  // Global rows first .. first + count - 1, in order.
  std::vector<SourceRow> locate(uint64_t first, uint64_t count) const;

 private:
  static constexpr uint64_t kCheckpointRows = 1024;
  std::size_t choose(uint64_t row, const std::vector<uint64_t>& counts) const;
  std::vector<uint64_t> counts_at(uint64_t row) const;

  std::vector<double> weights_;
  mutable std::mutex mutex_;
  mutable std::vector<std::vector<uint64_t>> checkpoints_;  // counts at rows 0, 1024, 2048, ...
};

}  // namespace ssa::data
