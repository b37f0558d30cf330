#include <gtest/gtest.h>

#include <cmath>

#include "ssa/train/adamw.h"
#include "ssa/train/grad_norm.h"
#include "ssa/util/error.h"

namespace ssa::train {
namespace {

TEST(AdamW, MatchesTheUpdateWrittenOut) {
  auto p = torch::tensor({1.0f, -2.0f});
  AdamWOptions o{0.9, 0.95, 1e-8, 0.1};
  AdamW adam({{"w", p}}, {true}, o);
  const auto g1 = torch::tensor({0.5f, 0.25f}), g2 = torch::tensor({-1.0f, 0.5f});
  adam.step(0.01, {g1}, 1.0);
  adam.step(0.02, {g2}, 1.0);

  // The same two steps in double precision by hand.
  double w[2] = {1.0, -2.0}, m[2] = {0, 0}, v[2] = {0, 0};
  const double grads[2][2] = {{0.5, 0.25}, {-1.0, 0.5}}, lrs[2] = {0.01, 0.02};
  for (int t = 1; t <= 2; ++t) {
    for (int i = 0; i < 2; ++i) {
      const double g = grads[t - 1][i], lr = lrs[t - 1];
      w[i] *= 1 - lr * 0.1;
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.95 * v[i] + 0.05 * g * g;
      const double mhat = m[i] / (1 - std::pow(0.9, t)), vhat = v[i] / (1 - std::pow(0.95, t));
      w[i] -= lr * mhat / (std::sqrt(vhat) + 1e-8);
    }
  }
  EXPECT_NEAR(p[0].item<double>(), w[0], 1e-6);
  EXPECT_NEAR(p[1].item<double>(), w[1], 1e-6);
  EXPECT_EQ(adam.steps(), 2);
}

TEST(AdamW, NoDecayLeavesAZeroGradientParameterUnchanged) {
  auto decayed = torch::ones({2, 2}), kept = torch::ones({2, 2});
  AdamW adam({{"a", decayed}, {"b", kept}}, {true, false}, {0.9, 0.95, 1e-8, 0.5});
  adam.step(0.1, {torch::zeros({2, 2}), torch::zeros({2, 2})}, 1.0);
  EXPECT_TRUE(torch::allclose(decayed, torch::full({2, 2}, 0.95f)));
  EXPECT_TRUE(torch::equal(kept, torch::ones({2, 2})));
}

TEST(AdamW, Bf16GradientsUpdateAsTheirFp32ValuesAndComputeCopiesFollow) {
  torch::manual_seed(4);
  const auto start = torch::randn({5, 7});
  const auto g = torch::randn({5, 7}).to(torch::kBFloat16);
  auto from_bf16 = start.clone(), from_fp32 = start.clone();
  AdamW a({{"w", from_bf16}}, {true}, {0.9, 0.95, 1e-8, 0.1});
  AdamW b({{"w", from_fp32}}, {true}, {0.9, 0.95, 1e-8, 0.1});
  auto copy = torch::full({5, 7}, std::nanf(""), torch::kBFloat16);
  a.step(1e-2, {g}, 0.5, {copy});
  b.step(1e-2, {g.to(torch::kFloat32)}, 0.5);
  EXPECT_TRUE(torch::equal(from_bf16, from_fp32));
  EXPECT_FALSE(torch::equal(from_bf16, start));
  EXPECT_TRUE(torch::equal(copy, from_bf16.to(torch::kBFloat16)));
  EXPECT_THROW(a.step(1e-2, {g}, 1.0, {copy, copy}), std::invalid_argument);
}

TEST(AdamW, DecayRules) {
  EXPECT_FALSE(takes_weight_decay("model.norm.weight", torch::ones({4}), true));
  EXPECT_FALSE(takes_weight_decay("model.layers.0.input_layernorm.weight", torch::ones({4}), true));
  EXPECT_TRUE(takes_weight_decay("model.layers.0.mlp.up_proj.weight", torch::ones({4, 4}), false));
  EXPECT_TRUE(takes_weight_decay("model.embed_tokens.weight", torch::ones({4, 4}), true));
  EXPECT_FALSE(takes_weight_decay("model.embed_tokens.weight", torch::ones({4, 4}), false));
  EXPECT_FALSE(takes_weight_decay("lm_head.weight", torch::ones({4, 4}), false));
}

TEST(AdamW, StateRoundTripContinuesBitForBit) {
  torch::manual_seed(3);
  const auto start = torch::randn({3, 4});
  const auto g1 = torch::randn({3, 4}), g2 = torch::randn({3, 4});
  auto a = start.clone();
  AdamW straight({{"w", a}}, {true}, {0.9, 0.95, 1e-8, 0.1});
  straight.step(1e-2, {g1}, 1.0);
  const auto saved_state = straight.state_tensors();
  const auto saved_weights = a.clone();
  straight.step(1e-2, {g2}, 0.5);

  auto b = saved_weights.clone();
  AdamW resumed({{"w", b}}, {true}, {0.9, 0.95, 1e-8, 0.1});
  std::map<std::string, torch::Tensor> tensors(saved_state.begin(), saved_state.end());
  resumed.load_state(tensors, 1, "test");
  resumed.step(1e-2, {g2}, 0.5);
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(AdamW, LoadStateRejectsMissingOrMisshapenTensors) {
  auto p = torch::zeros({2});
  AdamW adam({{"w", p}}, {true}, {});
  EXPECT_THROW(adam.load_state({{"exp_avg.w", torch::zeros({2})}}, 1, "x"), FormatError);
  EXPECT_THROW(adam.load_state({{"exp_avg.w", torch::zeros({3})}, {"exp_avg_sq.w", torch::zeros({2})}}, 1, "x"),
               FormatError);
}

TEST(GradNorm, GlobalNormAndClipFactor) {
  EXPECT_DOUBLE_EQ(global_grad_norm({torch::tensor({3.0f}), torch::tensor({4.0f, 0.0f})}), 5.0);
  EXPECT_TRUE(std::isnan(global_grad_norm({torch::tensor({std::nanf("")}), torch::tensor({1.0f})})));
  EXPECT_DOUBLE_EQ(clip_factor(5.0, 1.0), 0.2);
  EXPECT_DOUBLE_EQ(clip_factor(0.5, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(clip_factor(5.0, 0.0), 1.0);  // clipping off
}

TEST(GradNorm, Bf16GradientsAccumulateInFp32) {
  // 3000 entries of 1 + 2^-7 (exact in bf16): the norm 55.2002 lies between bf16's neighbours
  // 55.0 and 55.25, so a norm rounded to bf16 would miss by 0.04 or more.
  const double value = 1.0 + 1.0 / 128.0, want = std::sqrt(3000.0) * value;
  const auto g = torch::full({3000}, value, torch::kBFloat16);
  const auto norms = gradient_norms({g, torch::tensor({0.0f})});
  EXPECT_EQ(norms.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(norms[0].item<double>(), want, 1e-3);
  EXPECT_NEAR(global_grad_norm({g}), want, 1e-3);
}

}  // namespace
}  // namespace ssa::train
