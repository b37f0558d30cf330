#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "ssa/attention/mode_sampler.h"
#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

TEST(ModeSampler, IsAPureFunctionOfSeedAndCounter) {
  ModeSampler a(42, 0.5, false), b(42, 0.5, false), other_seed(43, 0.5, false);
  int differing_seed = 0;
  std::vector<Mode> sequence;
  for (uint64_t counter = 0; counter < 200; ++counter) {
    auto modes = a.modes(counter, 16);
    EXPECT_EQ(modes, b.modes(counter, 16));
    EXPECT_EQ(modes, a.modes(counter, 16));  // asking again changes nothing
    sequence.push_back(modes[0]);
    if (modes != other_seed.modes(counter, 16)) ++differing_seed;
  }
  // Different counters draw different modes (both occur, and not in a fixed alternation).
  EXPECT_NE(std::count(sequence.begin(), sequence.end(), Mode::kFull), 0);
  EXPECT_NE(std::count(sequence.begin(), sequence.end(), Mode::kSparse), 0);
  int changes = 0;
  for (size_t i = 1; i < sequence.size(); ++i) changes += sequence[i] != sequence[i - 1];
  EXPECT_GT(changes, 60);
  EXPECT_LT(changes, 140);
  EXPECT_GT(differing_seed, 60);
}

TEST(ModeSampler, FullProbabilityIsRespected) {
  const int draws = 20000;
  for (double p : {0.5, 0.25, 0.75, 0.1}) {
    ModeSampler sampler(7, p, false);
    int full = 0;
    for (uint64_t counter = 0; counter < draws; ++counter) full += sampler.modes(counter, 1)[0] == Mode::kFull;
    const double sigma = std::sqrt(draws * p * (1 - p));
    EXPECT_LT(std::fabs(full - draws * p), 4 * sigma) << "p_full=" << p << " full=" << full;
  }
}

TEST(ModeSampler, SharedModeUnlessPerLayer) {
  ModeSampler shared(5, 0.5, false), per_layer(5, 0.5, true);
  int mixed = 0, full_layers = 0, layers = 0;
  for (uint64_t counter = 0; counter < 100; ++counter) {
    auto modes = shared.modes(counter, 16);
    EXPECT_EQ(std::count(modes.begin(), modes.end(), modes[0]), 16);
    auto own = per_layer.modes(counter, 16);
    ASSERT_EQ(own.size(), 16u);
    if (std::count(own.begin(), own.end(), own[0]) != 16) ++mixed;
    full_layers += std::count(own.begin(), own.end(), Mode::kFull);
    layers += 16;
  }
  EXPECT_GE(mixed, 99);  // all 16 layers agree by chance with probability 2^-15
  EXPECT_NEAR(static_cast<double>(full_layers) / layers, 0.5, 0.05);
}

TEST(ModeSampler, ProbabilitiesZeroAndOneAreDeterministic) {
  ModeSampler never(1, 0.0, true), always(1, 1.0, true);
  for (uint64_t counter = 0; counter < 2000; ++counter) {
    for (auto m : never.modes(counter, 4)) EXPECT_EQ(m, Mode::kSparse);
    for (auto m : always.modes(counter, 4)) EXPECT_EQ(m, Mode::kFull);
  }
  EXPECT_THROW(ModeSampler(1, 1.5, false), UsageError);
  EXPECT_THROW(ModeSampler(1, -0.1, false), UsageError);
  EXPECT_THROW(ModeSampler(1, std::nan(""), false), UsageError);
}

}  // namespace
}  // namespace ssa::attention
