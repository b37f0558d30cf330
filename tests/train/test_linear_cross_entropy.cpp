// The chunked LM head + cross entropy against the unfused loss (matmul, fp32 logits, cross_entropy
// with reduction sum) on fresh random inputs: the loss and the gradients of the hidden states and
// of the weight, for every chunking, with ignored targets, a tied weight and an upstream gradient.
#include <gtest/gtest.h>

#include "ssa/train/linear_cross_entropy.h"
#include "ssa/train/micro_batch.h"

namespace ssa::train {
namespace {

constexpr int64_t kIgnore = MicroBatch::kIgnoreTarget;

torch::Tensor unfused(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets) {
  const auto logits = torch::matmul(hidden, weight.t()).to(torch::kFloat32);
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(kIgnore));
}

// Largest difference within `relative` of the largest magnitude of `expected`: element-wise
// relative tolerances fail on entries that sum to nearly 0.
::testing::AssertionResult close(const torch::Tensor& actual, const torch::Tensor& expected, double relative) {
  const double difference = (actual.to(torch::kFloat64) - expected.to(torch::kFloat64)).abs().max().item<double>();
  const double scale = expected.to(torch::kFloat64).abs().max().item<double>();
  if (difference <= relative * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "largest difference " << difference << " against a largest magnitude of " << scale;
}

struct Inputs {
  torch::Tensor hidden, weight, targets;
};

// [2, 9, 16] hidden states, a vocabulary of 37, a few ignored targets.
Inputs random_inputs(uint64_t seed, torch::ScalarType dtype = torch::kFloat32) {
  torch::manual_seed(seed);
  Inputs in;
  in.hidden = torch::randn({2, 9, 16}).to(dtype).requires_grad_();
  in.weight = (torch::randn({37, 16}) * 0.5).to(dtype).requires_grad_();
  in.targets = torch::randint(37, {2, 9}, torch::kLong);
  in.targets.index_put_({0, 3}, kIgnore);
  in.targets.index_put_({1, 0}, kIgnore);
  in.targets.index_put_({1, 8}, kIgnore);
  return in;
}

TEST(LinearCrossEntropy, LossAndGradientsMatchTheUnfusedLossForEveryChunking) {
  for (const int64_t chunk : {1, 2, 5, 7, 18, 2048}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    auto a = random_inputs(static_cast<uint64_t>(chunk));
    auto b = Inputs{a.hidden.detach().clone().requires_grad_(), a.weight.detach().clone().requires_grad_(), a.targets};
    const auto fused = linear_cross_entropy_sum(a.hidden, a.weight, a.targets, kIgnore, chunk);
    const auto reference = unfused(b.hidden, b.weight, b.targets);
    EXPECT_EQ(fused.scalar_type(), torch::kFloat32);
    EXPECT_EQ(fused.dim(), 0);
    EXPECT_NEAR(fused.item<double>(), reference.item<double>(), 1e-5 * std::abs(reference.item<double>()));
    // An upstream gradient other than 1, as the trainer's token weighting gives.
    (fused * 0.37).backward();
    (reference * 0.37).backward();
    EXPECT_TRUE(close(a.hidden.grad(), b.hidden.grad(), 1e-5));
    EXPECT_TRUE(close(a.weight.grad(), b.weight.grad(), 1e-5));
    EXPECT_GT(a.weight.grad().abs().sum().item<double>(), 0.0);
  }
}

TEST(LinearCrossEntropy, IgnoredTargetsGetNoLossAndNoGradient) {
  auto in = random_inputs(11);
  linear_cross_entropy_sum(in.hidden, in.weight, in.targets, kIgnore, 4).backward();
  const auto grad = in.hidden.grad();
  EXPECT_EQ(grad[0][3].abs().max().item<float>(), 0.0f);
  EXPECT_EQ(grad[1][0].abs().max().item<float>(), 0.0f);
  EXPECT_GT(grad[0][4].abs().max().item<float>(), 0.0f);
  const auto all_ignored = torch::full({2, 9}, kIgnore, torch::kLong);
  EXPECT_EQ(linear_cross_entropy_sum(in.hidden, in.weight, all_ignored, kIgnore).item<float>(), 0.0f);
}

TEST(LinearCrossEntropy, ATiedWeightAccumulatesBothGradients) {
  // The weight is also the token embedding, as with tie_embeddings.
  auto a = random_inputs(5);
  auto b = Inputs{a.hidden.detach().clone().requires_grad_(), a.weight.detach().clone().requires_grad_(), a.targets};
  const auto ids = torch::randint(37, {2, 9}, torch::kLong);
  const auto loss_a = linear_cross_entropy_sum(a.hidden + a.weight.index_select(0, ids.reshape({-1})).view({2, 9, 16}),
                                               a.weight, a.targets, kIgnore, 3);
  const auto loss_b = unfused(b.hidden + b.weight.index_select(0, ids.reshape({-1})).view({2, 9, 16}), b.weight, b.targets);
  loss_a.backward();
  loss_b.backward();
  EXPECT_TRUE(close(a.weight.grad(), b.weight.grad(), 1e-5));
  EXPECT_TRUE(close(a.hidden.grad(), b.hidden.grad(), 1e-5));
}

TEST(LinearCrossEntropy, Bf16MatchesTheUnfusedBf16Loss) {
  auto a = random_inputs(3, torch::kBFloat16);
  auto b = Inputs{a.hidden.detach().clone().requires_grad_(), a.weight.detach().clone().requires_grad_(), a.targets};
  const auto fused = linear_cross_entropy_sum(a.hidden, a.weight, a.targets, kIgnore, 4);
  const auto reference = unfused(b.hidden, b.weight, b.targets);
  EXPECT_NEAR(fused.item<double>(), reference.item<double>(), 1e-4 * std::abs(reference.item<double>()));
  fused.backward();
  reference.backward();
  EXPECT_EQ(a.hidden.grad().scalar_type(), torch::kBFloat16);
  EXPECT_EQ(a.weight.grad().scalar_type(), torch::kBFloat16);
  // bf16 products: a few units of bf16's 2^-8 on the largest entries.
  EXPECT_TRUE(close(a.hidden.grad(), b.hidden.grad(), 2e-2));
  EXPECT_TRUE(close(a.weight.grad(), b.weight.grad(), 2e-2));
}

TEST(LinearCrossEntropy, WithoutGradModeItOnlyComputesTheLoss) {
  auto in = random_inputs(8);
  torch::NoGradGuard no_grad;
  const auto loss = linear_cross_entropy_sum(in.hidden, in.weight, in.targets, kIgnore, 4);
  EXPECT_FALSE(loss.requires_grad());
  EXPECT_NEAR(loss.item<double>(), unfused(in.hidden, in.weight, in.targets).item<double>(), 1e-3);
}

TEST(LinearCrossEntropy, ShapesThatDoNotFitAreRefused) {
  auto in = random_inputs(2);
  EXPECT_THROW(linear_cross_entropy_sum(in.hidden, in.weight.narrow(1, 0, 8), in.targets, kIgnore), std::invalid_argument);
  EXPECT_THROW(linear_cross_entropy_sum(in.hidden, in.weight, in.targets.narrow(1, 0, 4), kIgnore), std::invalid_argument);
  EXPECT_THROW(linear_cross_entropy_sum(in.hidden, in.weight, in.targets, kIgnore, -1), std::invalid_argument);
}

}  // namespace
}  // namespace ssa::train
