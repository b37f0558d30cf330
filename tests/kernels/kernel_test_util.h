// Shared pieces of the CUDA kernel tests: problem shapes, fresh random inputs, error metrics.
#pragma once

#include <ATen/cuda/CUDAContext.h>
#include <gtest/gtest.h>

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "block_select.h"
#include "sparse_attention.h"
#include "ssa/attention/attention_spec.h"
#include "ssa/compat/kernel_arguments.h"
#include "ssa/compat/torch_compat.h"

namespace ssa::test {

using compat::bf16_data;

struct KernelCase {
  int64_t batch, length, q_heads, kv_heads, head_dim, block_size, topk;
  bool group;

  attention::SparseSpec spec() const {
    return {block_size, topk, group ? attention::Selection::kGroup : attention::Selection::kHead};
  }
  std::string name() const {
    std::ostringstream s;
    s << "B" << batch << "_T" << length << "_H" << q_heads << "x" << kv_heads << "_D" << head_dim << "_Bs"
      << block_size << "_k" << topk << (group ? "_group" : "_head");
    return s.str();
  }
};

inline void PrintTo(const KernelCase& c, std::ostream* os) { *os << c.name(); }

// The plan pairs every sparse-attention kernel test runs: each forward plan with each backward plan.
struct KernelPlans {
  kernels::ForwardPlan forward;
  kernels::BackwardPlan backward;
  const char* name;
};
inline const std::vector<KernelPlans>& every_kernel_plan() {
  static const std::vector<KernelPlans> plans{
      {kernels::ForwardPlan::kQueryMajor, kernels::BackwardPlan::kFused, "query-major forward, fused backward"},
      {kernels::ForwardPlan::kQueryMajor, kernels::BackwardPlan::kSplit, "query-major forward, split backward"},
      {kernels::ForwardPlan::kKeyMajor, kernels::BackwardPlan::kFused, "key-major forward, fused backward"},
      {kernels::ForwardPlan::kKeyMajor, kernels::BackwardPlan::kSplit, "key-major forward, split backward"}};
  return plans;
}

// A fresh seed per call (printed by the caller on failure), so every run draws new inputs.
inline uint64_t fresh_seed() {
  static std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

struct Inputs {
  torch::Tensor q, k, v, grad_out;
};

// bf16 CUDA inputs. Queries are scaled up a little so that softmax rows are not nearly uniform.
inline Inputs random_inputs(const KernelCase& c, uint64_t seed) {
  torch::manual_seed(seed);
  const auto options = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  Inputs in;
  in.q = (torch::randn({c.batch, c.length, c.q_heads, c.head_dim}, options.dtype(torch::kFloat32)) * 1.5)
             .to(torch::kBFloat16);
  in.k = torch::randn({c.batch, c.length, c.kv_heads, c.head_dim}, options);
  in.v = torch::randn({c.batch, c.length, c.kv_heads, c.head_dim}, options);
  in.grad_out = torch::randn({c.batch, c.length, c.q_heads, c.head_dim}, options);
  return in;
}

// ||got - want|| / ||want|| over float64 copies.
inline double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.to(torch::kCPU, torch::kFloat64), w = want.to(torch::kCPU, torch::kFloat64);
  return (g - w).norm().item<double>() / std::max(w.norm().item<double>(), 1e-30);
}

inline double max_abs_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.to(torch::kCPU, torch::kFloat64), w = want.to(torch::kCPU, torch::kFloat64);
  return (g - w).abs().max().item<double>();
}

inline bool all_finite(const torch::Tensor& t) { return torch::isfinite(t.to(torch::kFloat32)).all().item<bool>(); }

// Written into outputs before a kernel runs: every entry must be overwritten.
constexpr int32_t kPoison = std::numeric_limits<int32_t>::min();

inline kernels::BlockSelectShape block_select_shape(const KernelCase& c) {
  kernels::BlockSelectShape shape;
  shape.batch = c.batch;
  shape.length = c.length;
  shape.q_heads = c.q_heads;
  shape.kv_heads = c.kv_heads;
  shape.head_dim = c.head_dim;
  shape.block_size = c.block_size;
  shape.slots = std::min(c.topk, (c.length + c.block_size - 1) / c.block_size);
  shape.group = c.group;
  return shape;
}

// The routing kernel's selection of `in` ([B, T, H_sel, slots] int32 on the GPU), launched into a
// poisoned tensor that it must overwrite entirely. `document_starts`: int32 [B, T] on the GPU, or
// undefined for unmasked rows.
inline torch::Tensor run_block_select(const KernelCase& c, const Inputs& in,
                                      const torch::Tensor& document_starts = torch::Tensor()) {
  const kernels::BlockSelectShape shape = block_select_shape(c);
  const int64_t h_sel = c.group ? c.kv_heads : c.q_heads;
  auto selection = torch::full({c.batch, c.length, h_sel, shape.slots}, kPoison,
                               torch::TensorOptions().dtype(torch::kInt32).device(torch::kCUDA));
  auto workspace = torch::empty({static_cast<int64_t>(kernels::block_select_workspace_bytes(shape))},
                                torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA));
  kernels::block_select(bf16_data(in.q), bf16_data(in.k), selection.data_ptr<int32_t>(), workspace.data_ptr(), shape,
                        at::cuda::getCurrentCUDAStream().stream(),
                        document_starts.defined() ? document_starts.data_ptr<int32_t>() : nullptr);
  torch::cuda::synchronize();
  EXPECT_EQ(selection.eq(kPoison).sum().item<int64_t>(), 0) << "entries left unwritten";
  return selection;
}

// A valid selection that is not the routing's: the current block, then distinct random past
// blocks in random order, then -1, as int32 on the GPU. The kernels must follow (and mask)
// whatever they are given.
inline torch::Tensor random_selection(const KernelCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t h_sel = c.group ? c.kv_heads : c.q_heads;
  const int64_t K = std::min(c.topk, (c.length + c.block_size - 1) / c.block_size);
  auto sel = torch::full({c.batch, c.length, h_sel, K}, -1, torch::kInt32);
  auto a = sel.accessor<int32_t, 4>();
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t t = 0; t < c.length; ++t)
      for (int64_t h = 0; h < h_sel; ++h) {
        const int64_t cur = t / c.block_size;
        std::vector<int32_t> past(static_cast<size_t>(cur));
        std::iota(past.begin(), past.end(), 0);
        std::shuffle(past.begin(), past.end(), rng);
        a[b][t][h][0] = static_cast<int32_t>(cur);
        for (int64_t s = 1; s < K && s - 1 < cur; ++s) a[b][t][h][s] = past[s - 1];
      }
  return sel.to(torch::kCUDA);
}

// Relative (norm) error at most `rel_tol` and largest entry error at most `abs_tol_fraction` of the
// reference's largest magnitude; the figures are printed and kept in the test's JSON.
inline void expect_close(const std::string& what, const torch::Tensor& got, const torch::Tensor& want,
                         double rel_tol, double abs_tol_fraction) {
  const double rel = relative_error(got, want);
  const double max_err = max_abs_error(got, want);
  const double scale = want.abs().max().item<double>();
  EXPECT_LE(rel, rel_tol) << what << ": relative error";
  EXPECT_LE(max_err, abs_tol_fraction * std::max(scale, 1e-6)) << what << ": max abs error (max |ref| " << scale << ")";
  ::testing::Test::RecordProperty(what + "_relative_error", std::to_string(rel));
  std::cout << "    " << what << ": relative " << rel << ", max abs " << max_err << " (max |ref| " << scale << ")\n";
}

#define SSA_REQUIRE_CUDA()                                     \
  do {                                                         \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU"; \
  } while (0)

}  // namespace ssa::test
