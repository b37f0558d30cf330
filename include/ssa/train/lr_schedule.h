// The learning rate of every optimizer step: linear warmup from 0 to the peak, then the decay of
// `schedule.type` down to `schedule.min_lr`. A pure function of the step, so resuming needs only
// the step (and a run resumed with another length or peak simply follows the new curve).
#pragma once

#include <cstdint>

#include "ssa/config/config.h"

namespace ssa::train {

class LrSchedule {
 public:
  LrSchedule(const config::ScheduleConfig& schedule, double peak_lr, int64_t total_steps);

  // The rate of step `step` (0-based): warmup steps get peak * (step + 1) / warmup; decay
  // progress p = (step - warmup) / (total - warmup) runs from 0 at the first step after warmup
  // toward 1 at `total_steps` (so the last step is one decay increment above min_lr).
  double at(int64_t step) const;

  int64_t warmup_steps() const { return warmup_; }
  int64_t total_steps() const { return total_; }

 private:
  config::ScheduleConfig schedule_;
  double peak_;
  int64_t total_;
  int64_t warmup_;
};

}  // namespace ssa::train
