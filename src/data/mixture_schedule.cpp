#include "ssa/data/mixture_schedule.h"

#include <fmt/format.h>

#include <cmath>

#include "ssa/util/error.h"

namespace ssa::data {

MixtureSchedule::MixtureSchedule(std::vector<double> weights) : weights_(std::move(weights)) {
  if (weights_.empty()) throw UsageError("a data mixture needs at least one source");
  double total = 0;
  for (double weight : weights_) {
    if (!std::isfinite(weight) || weight <= 0) {
      throw UsageError(fmt::format("data weight {} must be positive and finite", weight));
    }
    total += weight;
  }
  for (double& weight : weights_) weight /= total;
  checkpoints_.push_back(std::vector<uint64_t>(weights_.size(), 0));
}

std::size_t MixtureSchedule::choose(uint64_t row, const std::vector<uint64_t>& counts) const {
  std::size_t best = 0;
  double best_deficit = 0;
  for (std::size_t k = 0; k < weights_.size(); ++k) {
    const double deficit = weights_[k] * static_cast<double>(row + 1) - static_cast<double>(counts[k]);
    if (k == 0 || deficit > best_deficit) {
      best = k;
      best_deficit = deficit;
    }
  }
  return best;
}

std::vector<uint64_t> MixtureSchedule::counts_at(uint64_t row) const {
  const uint64_t checkpoint = row / kCheckpointRows;
  std::vector<uint64_t> counts;
  {
    std::lock_guard lock(mutex_);
    while (checkpoints_.size() <= checkpoint) {
      std::vector<uint64_t> next = checkpoints_.back();
      const uint64_t begin = (checkpoints_.size() - 1) * kCheckpointRows;
      for (uint64_t n = begin; n < begin + kCheckpointRows; ++n) ++next[choose(n, next)];
      checkpoints_.push_back(std::move(next));
    }
    counts = checkpoints_[checkpoint];
  }
  for (uint64_t n = checkpoint * kCheckpointRows; n < row; ++n) ++counts[choose(n, counts)];
  return counts;
}

SourceRow MixtureSchedule::locate(uint64_t global_row) const { return locate(global_row, 1).front(); }

std::vector<SourceRow> MixtureSchedule::locate(uint64_t first, uint64_t count) const {
  std::vector<SourceRow> rows;
  rows.reserve(count);
  if (weights_.size() == 1) {
    for (uint64_t n = first; n < first + count; ++n) rows.push_back(SourceRow{0, n});
    return rows;
  }
  std::vector<uint64_t> counts = counts_at(first);
  for (uint64_t n = first; n < first + count; ++n) {
    const std::size_t source = choose(n, counts);
    rows.push_back(SourceRow{source, counts[source]++});
  }
  return rows;
}

}  // namespace ssa::data
