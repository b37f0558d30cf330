#include <gtest/gtest.h>

#include <set>

#include "attention/reference_math.h"
#include "ssa/attention/full_attention.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

std::vector<torch::Tensor> grads_of(const torch::Tensor& out, const torch::Tensor& weight,
                                    const std::vector<torch::Tensor>& inputs) {
  return torch::autograd::grad({(out * weight).sum()}, inputs);
}

TEST(SparseAttention, EqualsFullAttentionWhenTheBudgetCoversEveryBlock) {
  torch::manual_seed(21);
  const int64_t B = 2, T = 23, D = 8, Bs = 4;  // 6 blocks, the last incomplete
  const std::vector<std::pair<int64_t, int64_t>> head_configs = {{16, 16}, {16, 8}, {16, 4}, {16, 2}, {16, 1}, {32, 1}};
  for (auto [Hq, Hkv] : head_configs) {
    for (auto variant : {Selection::kGroup, Selection::kHead}) {
      auto q = torch::randn({B, T, Hq, D}, torch::kFloat64).requires_grad_(true);
      auto k = torch::randn({B, T, Hkv, D}, torch::kFloat64).requires_grad_(true);
      auto v = torch::randn({B, T, Hkv, D}, torch::kFloat64).requires_grad_(true);
      auto weight = torch::randn({B, T, Hq, D}, torch::kFloat64);
      auto full = full_attention_reference(q, k, v, 7);
      auto sparse = sparse_attention(q, k, v, {Bs, 6, variant}, Backend::kAuto, 7);
      EXPECT_LT(max_abs_diff(full, sparse), 1e-12) << "Hq=" << Hq << " Hkv=" << Hkv;
      auto g_full = grads_of(full, weight, {q, k, v});
      auto g_sparse = grads_of(sparse, weight, {q, k, v});
      for (size_t n = 0; n < 3; ++n) {
        EXPECT_LT(max_abs_diff(g_full[n], g_sparse[n]), 1e-12) << "input " << n << " Hq=" << Hq << " Hkv=" << Hkv;
      }
    }
  }
}

TEST(SparseAttention, MatchesBruteForceOverTheSelectedTokens) {
  torch::manual_seed(22);
  struct Case {
    int64_t T, Hq, Hkv, D, Bs, topk;
  };
  for (const auto& c : std::vector<Case>{{37, 4, 4, 8, 4, 3}, {45, 4, 2, 8, 3, 4}, {50, 8, 2, 4, 5, 2}, {29, 8, 1, 8, 2, 5}}) {
    auto q = torch::randn({2, c.T, c.Hq, c.D}, torch::kFloat64);
    auto k = torch::randn({2, c.T, c.Hkv, c.D}, torch::kFloat64);
    auto v = torch::randn({2, c.T, c.Hkv, c.D}, torch::kFloat64);
    for (auto variant : {Selection::kGroup, Selection::kHead}) {
      auto selection = test::brute_force_selection(q, k, c.Bs, c.topk, variant == Selection::kGroup);
      auto expected = test::brute_force_attention(q, k, v, [&](int64_t b, int64_t t, int64_t i) {
        return test::selected_tokens(selection, c.Bs, c.Hq, b, t, i);
      });
      for (int64_t chunk : {3, 1000}) {
        auto actual = sparse_attention_reference(q, k, v, {c.Bs, c.topk, variant}, chunk, {});
        EXPECT_LT(max_abs_diff(actual, expected), 1e-12) << "T=" << c.T << " Hkv=" << c.Hkv << " chunk=" << chunk;
      }
      // float32 inputs take the same path in float32.
      auto single = sparse_attention_reference(q.to(torch::kFloat32), k.to(torch::kFloat32), v.to(torch::kFloat32),
                                               {c.Bs, c.topk, variant}, 16, selection);
      EXPECT_EQ(single.scalar_type(), torch::kFloat32);
      EXPECT_LT(max_abs_diff(single, expected), 1e-5);
    }
  }
}

TEST(SparseAttention, DiffersFromFullAttentionOnlyBeyondTheReceptiveField) {
  torch::manual_seed(23);
  const int64_t T = 50, Bs = 4, topk = 3;  // t < 12: every block up to the current one is selected
  auto q = torch::randn({1, T, 4, 8}, torch::kFloat64) * 3;
  auto k = torch::randn({1, T, 2, 8}, torch::kFloat64);
  auto v = torch::randn({1, T, 2, 8}, torch::kFloat64);
  auto full = full_attention_reference(q, k, v, 512);
  auto sparse = sparse_attention_reference(q, k, v, {Bs, topk, Selection::kGroup}, 512, {});
  EXPECT_LT(max_abs_diff(full.narrow(1, 0, topk * Bs), sparse.narrow(1, 0, topk * Bs)), 1e-12);
  EXPECT_GT(max_abs_diff(full.narrow(1, topk * Bs, T - topk * Bs), sparse.narrow(1, topk * Bs, T - topk * Bs)), 1e-3);
}

TEST(SparseAttention, GradientsMatchFiniteDifferences) {
  torch::manual_seed(24);
  const int64_t B = 1, T = 9, Hq = 4, Hkv = 2, D = 3;
  auto q = torch::randn({B, T, Hq, D}, torch::kFloat64);
  auto k = torch::randn({B, T, Hkv, D}, torch::kFloat64);
  auto v = torch::randn({B, T, Hkv, D}, torch::kFloat64);
  auto weight = torch::randn({B, T, Hq, D}, torch::kFloat64);
  test::expect_gradients_match_finite_differences(
      [&](const std::vector<torch::Tensor>& x) { return (full_attention_reference(x[0], x[1], x[2], 4) * weight).sum(); },
      {q, k, v});
  for (auto variant : {Selection::kGroup, Selection::kHead}) {
    const SparseSpec spec{2, 2, variant};
    // The selection is piecewise constant in q and k: hold it fixed while differentiating.
    const auto selection = select_blocks(q, k, spec, 4);
    test::expect_gradients_match_finite_differences(
        [&](const std::vector<torch::Tensor>& x) {
          return (sparse_attention_reference(x[0], x[1], x[2], spec, 4, selection) * weight).sum();
        },
        {q, k, v});
  }
}

TEST(SparseAttention, GradientsReachOnlyTheSelectedTokens) {
  torch::manual_seed(25);
  const int64_t T = 40, Hq = 4, Hkv = 2, D = 8, Bs = 4, topk = 3;
  for (auto variant : {Selection::kGroup, Selection::kHead}) {
    auto q = torch::randn({1, T, Hq, D}, torch::kFloat64).requires_grad_(true);
    auto k = torch::randn({1, T, Hkv, D}, torch::kFloat64).requires_grad_(true);
    auto v = torch::randn({1, T, Hkv, D}, torch::kFloat64).requires_grad_(true);
    const SparseSpec spec{Bs, topk, variant};
    auto selection = select_blocks(q, k, spec, 8);
    const int64_t t = 33, head = 3, kv_head = head / (Hq / Hkv);
    auto out = sparse_attention(q, k, v, spec, Backend::kReference, 8, selection);
    auto grads = torch::autograd::grad({out[0][t][head].sum()}, {q, k, v});
    auto tokens = test::selected_tokens(selection, Bs, Hq, 0, t, head);
    const std::set<int64_t> chosen(tokens.begin(), tokens.end());
    ASSERT_EQ(chosen.size(), static_cast<size_t>((topk - 1) * Bs + t % Bs + 1));  // past blocks + causal part
    for (int64_t u = 0; u < T; ++u) {
      for (int64_t h = 0; h < Hkv; ++h) {
        const bool used = h == kv_head && chosen.count(u) > 0;
        const double gv = grads[2][0][u][h].abs().sum().item<double>();
        const double gk = grads[1][0][u][h].abs().sum().item<double>();
        if (used) {
          EXPECT_GT(gv, 0) << "u=" << u;
          EXPECT_GT(gk, 0) << "u=" << u;
        } else {
          EXPECT_EQ(gv, 0) << "u=" << u << " h=" << h;
          EXPECT_EQ(gk, 0) << "u=" << u << " h=" << h;
        }
      }
    }
    EXPECT_EQ(grads[0].abs().sum().item<double>(), grads[0][0][t][head].abs().sum().item<double>());
  }
}

TEST(SparseAttention, LowPrecisionInputsAccumulateInFloat32) {
  torch::manual_seed(26);
  auto q = torch::randn({2, 30, 4, 16}).to(torch::kBFloat16);
  auto k = torch::randn({2, 30, 2, 16}).to(torch::kBFloat16);
  auto v = torch::randn({2, 30, 2, 16}).to(torch::kBFloat16);
  const SparseSpec spec{4, 3, Selection::kHead};
  auto out = sparse_attention(q, k, v, spec, Backend::kAuto, 8);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  auto reference = sparse_attention_reference(q.to(torch::kFloat32), k.to(torch::kFloat32), v.to(torch::kFloat32), spec,
                                              8, {});
  EXPECT_LT(max_abs_diff(out, reference), 1e-2);
}

TEST(SparseAttention, RejectsBadArguments) {
  auto q = torch::randn({1, 8, 4, 4});
  auto k = torch::randn({1, 8, 2, 4});
  auto v = torch::randn({1, 8, 2, 4});
  const SparseSpec spec{4, 2, Selection::kGroup};
  EXPECT_THROW(sparse_attention(q, k, v, spec, Backend::kCuda, 4), UsageError);
  EXPECT_THROW(sparse_attention(q, k, v.narrow(1, 0, 7), spec, Backend::kAuto, 4), UsageError);
  auto wrong_heads = torch::zeros({1, 8, 4, 2}, torch::kInt32);  // per query head, but spec says group
  EXPECT_THROW(sparse_attention(q, k, v, spec, Backend::kAuto, 4, wrong_heads), UsageError);
  auto wrong_type = torch::zeros({1, 8, 2, 2}, torch::kInt64);
  EXPECT_THROW(sparse_attention(q, k, v, spec, Backend::kAuto, 4, wrong_type), UsageError);
  EXPECT_NO_THROW(sparse_attention(q, k, v, spec, Backend::kReference, 4, select_blocks(q, k, spec, 4)));
}

// route_blocks is the selection sparse_attention makes for itself: on the CPU select_blocks, and
// sparse_attention over it equals sparse_attention left to route.
TEST(SparseAttention, RouteBlocksIsTheSelectionSparseAttentionMakes) {
  torch::manual_seed(23);
  auto q = torch::randn({2, 19, 4, 8});
  auto k = torch::randn({2, 19, 2, 8});
  auto v = torch::randn({2, 19, 2, 8});
  for (auto variant : {Selection::kGroup, Selection::kHead}) {
    const SparseSpec spec{4, 2, variant};
    const auto routed = route_blocks(q, k, spec, Backend::kAuto, 5);
    EXPECT_TRUE(torch::equal(routed, select_blocks(q, k, spec, 5)));
    EXPECT_TRUE(torch::equal(sparse_attention(q, k, v, spec, Backend::kAuto, 5, routed),
                             sparse_attention(q, k, v, spec, Backend::kAuto, 5)));
  }
  EXPECT_THROW(route_blocks(q, k, {4, 2, Selection::kGroup}, Backend::kCuda, 5), UsageError);
}

}  // namespace
}  // namespace ssa::attention
