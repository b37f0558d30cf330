// The loss kernel (kernels/cross_entropy.cu) against float64 on fresh random logits, in place and
// without the gradient; and the LM head + loss on the kernel path (train/linear_cross_entropy.h)
// against the ATen path in float32 on the CPU, with gradients.
#include <cmath>

#include "cross_entropy.h"
#include "kernel_test_util.h"
#include "ssa/train/linear_cross_entropy.h"

namespace ssa::test {
namespace {

const auto kCudaBf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);

// A bf16 CUDA leaf and its float32 CPU twin holding the same values, both requiring gradients.
struct Twin {
  torch::Tensor cuda, cpu;
};
Twin twin(const torch::Tensor& values_bf16_cuda) {
  return {values_bf16_cuda.detach().clone().requires_grad_(true),
          values_bf16_cuda.detach().cpu().to(torch::kFloat32).requires_grad_(true)};
}

struct CrossEntropyCase {
  int64_t rows, vocab;
};

class CrossEntropyKernelTest : public ::testing::TestWithParam<CrossEntropyCase> {};

TEST_P(CrossEntropyKernelTest, LossAndGradientMatchFloat64) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  torch::manual_seed(seed);
  const auto c = GetParam();
  constexpr int64_t kIgnore = -100;
  auto logits = (torch::randn({c.rows, c.vocab}, kCudaBf16.dtype(torch::kFloat32)) * 4).to(torch::kBFloat16);
  auto targets = torch::randint(c.vocab, {c.rows}, torch::TensorOptions().dtype(torch::kInt64).device(torch::kCUDA));
  targets.index_put_({torch::rand({c.rows}, targets.options().dtype(torch::kFloat32)) < 0.2}, kIgnore);

  const auto l64 = logits.cpu().to(torch::kFloat64);
  const auto t = targets.cpu();
  const auto valid = t.ne(kIgnore);
  const auto safe = t.masked_fill(valid.logical_not(), 0);
  const auto lse = torch::logsumexp(l64, 1);
  const auto want_loss = (lse - l64.gather(1, safe.unsqueeze(1)).squeeze(1)).masked_fill(valid.logical_not(), 0);
  auto want_grad = torch::softmax(l64, 1);
  want_grad.scatter_add_(1, safe.unsqueeze(1), -torch::ones({c.rows, 1}, torch::kFloat64));
  want_grad.mul_(valid.to(torch::kFloat64).unsqueeze(1));

  auto in_place = logits.clone();
  const auto loss = train::cross_entropy_rows_cuda(in_place, targets, kIgnore, /*write_gradient=*/true);
  EXPECT_LE(relative_error(loss, want_loss), 1e-4);
  EXPECT_LE(max_abs_error(loss, want_loss), 1e-3);
  expect_close("grad logits", in_place, want_grad, 1e-2, 1e-2);

  // Without the gradient the logits stay as they were.
  auto untouched = logits.clone();
  const auto loss_only = train::cross_entropy_rows_cuda(untouched, targets, kIgnore, false);
  EXPECT_TRUE(torch::equal(untouched, logits));
  EXPECT_TRUE(torch::equal(loss_only, loss));
}

// Vocab sizes: Llama-3's (a multiple of 8: vector loads) and odd ones (the scalar path).
INSTANTIATE_TEST_SUITE_P(Shapes, CrossEntropyKernelTest,
                         ::testing::Values(CrossEntropyCase{64, 128256}, CrossEntropyCase{9, 1003},
                                           CrossEntropyCase{300, 512}, CrossEntropyCase{1, 7}),
                         [](const auto& info) {
                           return "rows" + std::to_string(info.param.rows) + "_vocab" +
                                  std::to_string(info.param.vocab);
                         });

TEST(CrossEntropyKernel, AnOutOfRangeTargetGivesANonFiniteLoss) {
  SSA_REQUIRE_CUDA();
  auto logits = torch::randn({3, 64}, kCudaBf16);
  const auto targets = torch::tensor({1, 64, -100}, torch::TensorOptions().dtype(torch::kInt64)).to(torch::kCUDA);
  const auto loss = train::cross_entropy_rows_cuda(logits, targets, -100, true).cpu();
  EXPECT_TRUE(std::isfinite(loss[0].item<float>()));
  EXPECT_TRUE(std::isnan(loss[1].item<float>()));
  EXPECT_EQ(loss[2].item<float>(), 0.0f);
}

// The whole LM head + loss on the kernel path against the ATen path in float32 on the CPU.
TEST(LinearCrossEntropyKernelPath, MatchesTheAtenPathWithGradients) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  torch::manual_seed(seed);
  const int64_t vocab = 4000, width = 64;
  auto hidden = twin(torch::randn({3, 700, width}, kCudaBf16));
  auto weight = twin((torch::randn({vocab, width}, kCudaBf16.dtype(torch::kFloat32)) * 0.3).to(torch::kBFloat16));
  auto targets = torch::randint(vocab, {3, 700}, torch::TensorOptions().dtype(torch::kInt64));
  targets.index_put_({torch::rand({3, 700}) < 0.1}, -100);

  ASSERT_TRUE(train::linear_cross_entropy_uses_kernel(hidden.cuda, weight.cuda, true));
  ASSERT_FALSE(train::linear_cross_entropy_uses_kernel(hidden.cuda, weight.cuda, false));
  // Chunks of 512 rows: the weight gradient accumulates over several chunks.
  const auto loss = train::linear_cross_entropy_sum(hidden.cuda, weight.cuda, targets.to(torch::kCUDA), -100, 512);
  (loss * 0.01).backward();
  const auto want = train::linear_cross_entropy_sum(hidden.cpu, weight.cpu, targets, -100);
  (want * 0.01).backward();
  EXPECT_LE(std::abs(loss.item<double>() - want.item<double>()), 1e-3 * std::abs(want.item<double>()));
  expect_close("dhidden", hidden.cuda.grad(), hidden.cpu.grad(), 2e-2, 3e-2);
  expect_close("dweight", weight.cuda.grad(), weight.cpu.grad(), 2e-2, 3e-2);
}

}  // namespace
}  // namespace ssa::test
