// The SSA alignment loss kernels (kernels/alignment_loss.cu) through their autograd binding against
// alignment_loss_reference in float32 on the CPU (the same bf16 values upcast), on fresh random
// outputs whose differences fall on both sides of SmoothL1's beta: the loss, the gradient of each
// direction, and no gradient for a direction of weight 0; the raw kernels on poisoned outputs.
#include <ATen/cuda/CUDAContext.h>

#include "alignment_loss.h"
#include "kernel_test_util.h"
#include "ssa/attention/alignment_loss.h"

namespace ssa::test {
namespace {

struct AlignCase {
  std::vector<int64_t> shape;
  bool smooth_l1;
  double beta;
  double sparsity_weight, commitment_weight;
};

std::string case_name(const AlignCase& c) {
  std::string name;
  for (const auto d : c.shape) name += std::to_string(d) + "x";
  name += c.smooth_l1 ? "smoothl1_beta" + std::to_string(static_cast<int>(c.beta * 100)) : "l2";
  return name + "_ws" + std::to_string(static_cast<int>(c.sparsity_weight)) + "_wc" +
         std::to_string(static_cast<int>(c.commitment_weight));
}

class AlignmentLossKernelTest : public ::testing::TestWithParam<AlignCase> {};

TEST_P(AlignmentLossKernelTest, MatchesTheReferenceWithGradients) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  torch::manual_seed(seed);
  const AlignCase c = GetParam();
  const attention::AlignSpec spec{c.smooth_l1, c.beta, c.sparsity_weight, c.commitment_weight};
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA);
  // Differences from 0.01 to about 3: SmoothL1's quadratic and linear pieces both occur.
  const auto full_values = torch::randn(c.shape, f32).to(torch::kBFloat16);
  const auto sparse_values =
      (full_values.to(torch::kFloat32) + torch::randn(c.shape, f32) * torch::rand(c.shape, f32).pow(2) * 3)
          .to(torch::kBFloat16);

  auto full = full_values.clone().requires_grad_(true), sparse = sparse_values.clone().requires_grad_(true);
  auto full_ref = full_values.cpu().to(torch::kFloat32).requires_grad_(true);
  auto sparse_ref = sparse_values.cpu().to(torch::kFloat32).requires_grad_(true);
  ASSERT_TRUE(attention::alignment_loss_cuda_supports(full, sparse));
  const auto loss = attention::alignment_loss(full, sparse, spec, /*fused=*/true);
  const auto want = attention::alignment_loss_reference(full_ref, sparse_ref, spec);
  EXPECT_EQ(loss.scalar_type(), torch::kFloat32);
  EXPECT_LE(std::abs(loss.item<double>() - want.item<double>()), 1e-4 * std::abs(want.item<double>()))
      << loss.item<double>() << " vs " << want.item<double>();
  (loss * 3.0).backward();
  (want * 3.0).backward();

  if (c.sparsity_weight != 0) {
    expect_close("d full", full.grad(), full_ref.grad(), 5e-3, 5e-3);
  } else {
    EXPECT_FALSE(full.grad().defined()) << "a direction of weight 0 sends no gradient";
  }
  if (c.commitment_weight != 0) {
    expect_close("d sparse", sparse.grad(), sparse_ref.grad(), 5e-3, 5e-3);
  } else {
    EXPECT_FALSE(sparse.grad().defined()) << "a direction of weight 0 sends no gradient";
  }
  // The eager bf16 path returns the same value rounded to bf16.
  const auto eager = attention::alignment_loss(full_values, sparse_values, spec, /*fused=*/false);
  EXPECT_LE(std::abs(eager.item<double>() - loss.item<double>()), 1e-2 * std::abs(loss.item<double>()));

  // Raw kernels: every output element written (poisoned before), the same values as the binding.
  kernels::AlignmentLossShape shape{full_values.numel(), c.smooth_l1, static_cast<float>(c.beta)};
  auto raw_loss = torch::full({}, std::numeric_limits<float>::quiet_NaN(), f32);
  auto workspace = torch::full({static_cast<int64_t>(kernels::alignment_loss_forward_workspace_bytes(shape))}, 0xff,
                               f32.dtype(torch::kUInt8));
  const double n = static_cast<double>(full_values.numel());
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  kernels::alignment_loss_forward(bf16_data(full_values), bf16_data(sparse_values), raw_loss.data_ptr<float>(),
                                  static_cast<float>((c.sparsity_weight + c.commitment_weight) / n),
                                  workspace.data_ptr(), shape, stream);
  auto grad_full = torch::full_like(full_values, std::numeric_limits<float>::quiet_NaN());
  auto grad_sparse = torch::full_like(full_values, std::numeric_limits<float>::quiet_NaN());
  const auto three = torch::full({}, 3.0, f32);
  kernels::alignment_loss_backward(bf16_data(full_values), bf16_data(sparse_values), three.data_ptr<float>(),
                                   static_cast<float>(c.sparsity_weight / n), static_cast<float>(c.commitment_weight / n),
                                   bf16_data(grad_full), bf16_data(grad_sparse), shape, stream);
  torch::cuda::synchronize();
  EXPECT_EQ(raw_loss.item<float>(), loss.item<float>());
  EXPECT_TRUE(all_finite(grad_full));
  EXPECT_TRUE(all_finite(grad_sparse));
  if (c.sparsity_weight != 0) {
    EXPECT_TRUE(torch::equal(grad_full, full.grad()));
  }
  if (c.commitment_weight != 0) {
    EXPECT_TRUE(torch::equal(grad_sparse, sparse.grad()));
  }
}

// [B, T, Hq, D] of the 1B model at 8k, and sizes with a tail of fewer than 8 values.
INSTANTIATE_TEST_SUITE_P(Cases, AlignmentLossKernelTest,
                         ::testing::Values(AlignCase{{1, 8192, 32, 64}, true, 1.0, 1.0, 1.0},
                                           AlignCase{{2, 77, 4, 64}, true, 0.05, 1.0, 1.0},
                                           AlignCase{{3, 5, 7}, false, 1.0, 1.0, 1.0},
                                           AlignCase{{2, 33, 8, 64}, true, 1.0, 1.0, 0.0},
                                           AlignCase{{2, 33, 8, 64}, false, 1.0, 0.0, 1.0}),
                         [](const auto& info) { return case_name(info.param); });

}  // namespace
}  // namespace ssa::test
