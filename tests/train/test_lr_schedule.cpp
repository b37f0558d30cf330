#include <gtest/gtest.h>

#include "ssa/config/loader.h"
#include "ssa/train/lr_schedule.h"

namespace ssa::train {
namespace {

config::ScheduleConfig schedule(const std::string& type, int64_t warmup, double min_lr) {
  config::ScheduleConfig s;
  s.type = type;
  s.warmup_steps = warmup;
  s.min_lr = min_lr;
  return s;
}

TEST(LrSchedule, WarmupIsLinearFromTheFirstStep) {
  const LrSchedule lr(schedule("cosine", 10, 1e-4), 1e-3, 100);
  EXPECT_DOUBLE_EQ(lr.at(0), 1e-4);  // 1/10 of the peak
  EXPECT_DOUBLE_EQ(lr.at(4), 5e-4);
  EXPECT_DOUBLE_EQ(lr.at(9), 1e-3);
}

TEST(LrSchedule, CosineDecaysToTheMinimum) {
  const LrSchedule lr(schedule("cosine", 10, 1e-4), 1e-3, 100);
  EXPECT_DOUBLE_EQ(lr.at(10), 1e-3);                 // progress 0
  EXPECT_NEAR(lr.at(55), 5.5e-4, 1e-15);             // progress 1/2: halfway
  EXPECT_NEAR(lr.at(32), 1e-4 + 9e-4 * 0.5 * (1 + std::cos(M_PI * 22.0 / 90.0)), 1e-15);
  EXPECT_DOUBLE_EQ(lr.at(100), 1e-4);                // the end (and beyond) is the minimum
  EXPECT_DOUBLE_EQ(lr.at(500), 1e-4);
}

TEST(LrSchedule, LinearDecay) {
  const LrSchedule lr(schedule("linear", 10, 1e-4), 1e-3, 100);
  EXPECT_NEAR(lr.at(55), 5.5e-4, 1e-15);
  EXPECT_NEAR(lr.at(32), 7.8e-4, 1e-15);  // 1e-3 - 9e-4 * 22 / 90
  EXPECT_NEAR(lr.at(99), 1e-4 + 9e-4 / 90.0, 1e-15);
}

TEST(LrSchedule, WsdHoldsThenDecaysOverTheLastFraction) {
  auto s = schedule("wsd", 10, 0.0);
  s.decay_fraction = 0.2;
  s.decay_shape = "linear";
  const LrSchedule linear(s, 1e-3, 100);
  EXPECT_DOUBLE_EQ(linear.at(50), 1e-3);
  EXPECT_DOUBLE_EQ(linear.at(79), 1e-3);
  EXPECT_DOUBLE_EQ(linear.at(80), 1e-3);  // decay progress 0
  EXPECT_NEAR(linear.at(90), 5e-4, 1e-15);
  s.decay_shape = "sqrt";
  const LrSchedule sqrt_decay(s, 1e-3, 100);
  EXPECT_NEAR(sqrt_decay.at(85), 5e-4, 1e-15);  // 1 - sqrt(1/4)
  s.decay_shape = "cosine";
  const LrSchedule cosine_decay(s, 1e-3, 100);
  EXPECT_NEAR(cosine_decay.at(90), 5e-4, 1e-15);
}

TEST(LrSchedule, ConstantAfterWarmup) {
  const LrSchedule lr(schedule("constant", 5, 0.0), 2e-3, 100);
  EXPECT_DOUBLE_EQ(lr.at(2), 2e-3 * 3 / 5);
  EXPECT_DOUBLE_EQ(lr.at(99), 2e-3);
}

TEST(LrSchedule, WarmupFractionOfTheRun) {
  // The paper: 1% of 31800 steps.
  const config::Config defaults = config::load({}, {});
  const LrSchedule lr(defaults.schedule, defaults.optim.lr, defaults.train.steps);
  EXPECT_EQ(lr.warmup_steps(), 318);
  EXPECT_DOUBLE_EQ(lr.at(317), 1e-3);
  EXPECT_DOUBLE_EQ(lr.at(31800), 0.0);
}

}  // namespace
}  // namespace ssa::train
