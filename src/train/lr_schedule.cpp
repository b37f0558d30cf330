#include "ssa/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace ssa::train {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Share of the way from the peak (0) to min_lr (1) for decay progress p in [0, 1].
double decay_share(const std::string& shape, double p) {
  if (shape == "linear") return p;
  if (shape == "sqrt") return std::sqrt(p);
  return 0.5 * (1.0 - std::cos(kPi * p));  // cosine
}

}  // namespace

LrSchedule::LrSchedule(const config::ScheduleConfig& schedule, double peak_lr, int64_t total_steps)
    : schedule_(schedule), peak_(peak_lr), total_(total_steps) {
  warmup_ = schedule.warmup_steps > 0 ? schedule.warmup_steps
                                      : static_cast<int64_t>(std::llround(schedule.warmup_fraction * total_steps));
  warmup_ = std::clamp<int64_t>(warmup_, 0, total_steps);
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_) return peak_ * static_cast<double>(step + 1) / static_cast<double>(warmup_);
  const double min_lr = schedule_.min_lr;
  const std::string& type = schedule_.type;
  if (type == "constant") return peak_;
  const int64_t decay_steps = total_ - warmup_;
  if (type == "wsd") {
    const int64_t wsd_decay = std::max<int64_t>(1, std::llround(schedule_.decay_fraction * total_));
    const int64_t decay_start = std::max(warmup_, total_ - wsd_decay);
    if (step < decay_start) return peak_;
    const double p = std::min(1.0, static_cast<double>(step - decay_start) / static_cast<double>(total_ - decay_start));
    return peak_ - (peak_ - min_lr) * decay_share(schedule_.decay_shape, p);
  }
  if (decay_steps <= 0) return peak_;
  const double p = std::min(1.0, static_cast<double>(step - warmup_) / static_cast<double>(decay_steps));
  return peak_ - (peak_ - min_lr) * decay_share(type == "linear" ? "linear" : "cosine", p);
}

}  // namespace ssa::train
