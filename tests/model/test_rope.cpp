#include <gtest/gtest.h>

#include <cmath>

#include "ssa/model/rope.h"

namespace ssa::model {
namespace {

config::ModelConfig base_config(double theta, int64_t head_dim) {
  config::ModelConfig c;
  c.rope_theta = theta;
  c.head_dim = head_dim;
  return c;
}

// The formulas written out in double precision, independently of the float32 implementation.
std::vector<double> default_formula(double theta, int64_t d) {
  std::vector<double> f;
  for (int64_t i = 0; i < d / 2; ++i) f.push_back(1.0 / std::pow(theta, 2.0 * i / d));
  return f;
}

void expect_close(const torch::Tensor& actual, const std::vector<double>& expected, double rtol) {
  ASSERT_EQ(actual.numel(), static_cast<int64_t>(expected.size()));
  auto a = actual.to(torch::kFloat64);
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(a[i].item<double>(), expected[i], rtol * std::fabs(expected[i])) << "index " << i;
  }
}

TEST(Rope, DefaultMatchesFormula) {
  auto p = rope_parameters(base_config(500000.0, 64));
  EXPECT_EQ(p.inv_freq.scalar_type(), torch::kFloat32);
  expect_close(p.inv_freq, default_formula(500000.0, 64), 1e-6);
  EXPECT_EQ(p.attention_scaling, 1.0);
}

TEST(Rope, LinearDividesByFactor) {
  auto c = base_config(10000.0, 32);
  c.rope_scaling.rope_type = "linear";
  c.rope_scaling.factor = 4.0;
  auto expected = default_formula(10000.0, 32);
  for (auto& x : expected) x /= 4.0;
  expect_close(rope_parameters(c).inv_freq, expected, 1e-6);
}

TEST(Rope, Llama3SplitsFrequenciesIntoThreeBands) {
  // The paper's 32k continuation: theta 500k, d 64, factor 4 from 8192 (ssa-method.md section 4).
  auto c = base_config(500000.0, 64);
  c.rope_scaling.rope_type = "llama3";
  c.rope_scaling.factor = 4.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  auto base = default_formula(500000.0, 64);
  std::vector<double> expected;
  int unchanged = 0, smoothed = 0, divided = 0;
  for (double f : base) {
    const double wavelen = 2 * M_PI / f;
    if (wavelen < 8192.0 / 4.0) {
      expected.push_back(f);
      ++unchanged;
    } else if (wavelen > 8192.0) {
      expected.push_back(f / 4.0);
      ++divided;
    } else {
      const double s = (8192.0 / wavelen - 1.0) / 3.0;
      expected.push_back((1 - s) * f / 4.0 + s * f);
      ++smoothed;
    }
  }
  // ssa-reference-code-notes.md 1.3: dims 0-14 unchanged, 15-17 interpolated, 18-31 divided.
  EXPECT_EQ(unchanged, 15);
  EXPECT_EQ(smoothed, 3);
  EXPECT_EQ(divided, 14);
  expect_close(rope_parameters(c).inv_freq, expected, 1e-5);
}

TEST(Rope, YarnRampAndAttentionFactor) {
  auto c = base_config(500000.0, 64);
  c.rope_scaling.rope_type = "yarn";
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.original_max_position_embeddings = 4096;
  auto p = rope_parameters(c);
  EXPECT_NEAR(p.attention_scaling, 0.1 * std::log(8.0) + 1.0, 1e-12);  // 1.208
  // anchors-frameworks.md section 5: theta 500k, d 64, orig 4096 gives the ramp (7, 16).
  auto base = default_formula(500000.0, 64);
  std::vector<double> expected;
  for (int64_t i = 0; i < 32; ++i) {
    const double ramp = std::clamp((i - 7.0) / (16.0 - 7.0), 0.0, 1.0);
    const double extrapolation = 1 - ramp;
    expected.push_back(base[i] / 8.0 * (1 - extrapolation) + base[i] * extrapolation);
  }
  expect_close(p.inv_freq, expected, 1e-5);
}

TEST(Rope, TablesRotateHalfLayout) {
  auto p = rope_parameters(base_config(10000.0, 8));
  auto positions = torch::tensor({0, 3, 7}, torch::kInt64).unsqueeze(0);
  auto tables = rope_tables(p, positions);
  ASSERT_EQ(tables.cos.sizes(), (std::vector<int64_t>{1, 3, 8}));
  // Position 0 is the identity rotation.
  auto x = torch::randn({1, 3, 2, 8}, torch::kFloat64);
  auto y = apply_rope(x, tables);
  EXPECT_TRUE(torch::allclose(y[0][0], x[0][0]));
  // Pair (i, i + d/2) rotates by angle pos * inv_freq_i; norms are preserved.
  const double angle = 7 * p.inv_freq[1].item<double>();
  const double a = x[0][2][1][1].item<double>(), b = x[0][2][1][5].item<double>();
  EXPECT_NEAR(y[0][2][1][1].item<double>(), a * std::cos(angle) - b * std::sin(angle), 1e-6);
  EXPECT_NEAR(y[0][2][1][5].item<double>(), b * std::cos(angle) + a * std::sin(angle), 1e-6);
  EXPECT_NEAR(y.norm().item<double>(), x.norm().item<double>(), 1e-6);
}

}  // namespace
}  // namespace ssa::model
