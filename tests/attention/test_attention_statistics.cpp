#include <gtest/gtest.h>

#include <cmath>

#include "attention/reference_math.h"
#include "ssa/attention/attention_statistics.h"
#include "ssa/attention/sparse_attention.h"

namespace ssa::attention {
namespace {

double max_abs(const torch::Tensor& x) { return x.abs().max().item<double>(); }

TEST(AttentionStatistics, NothingIsDroppedWhenTheBudgetCoversEveryBlock) {
  torch::manual_seed(41);
  auto q = torch::randn({2, 27, 4, 8}, torch::kFloat64) * 2;
  auto k = torch::randn({2, 27, 2, 8}, torch::kFloat64);
  auto v = torch::randn({2, 27, 2, 8}, torch::kFloat64);
  for (auto variant : {Selection::kGroup, Selection::kHead}) {
    auto s = attention_statistics(q, k, v, {4, 7, variant}, 10);
    ASSERT_EQ(s.sparsity.sizes(), (std::vector<int64_t>{2, 27, 4}));
    EXPECT_LT(max_abs(s.sparsity - 1), 1e-12);
    EXPECT_LT(max_abs(s.dropped), 1e-15);
    EXPECT_LT(max_abs(s.kl), 1e-12);
    EXPECT_LT(max_abs(s.output_error), 1e-12);
    EXPECT_NEAR(s.mean_sparsity, 1.0, 1e-12);
    EXPECT_NEAR(s.mean_kl, 0.0, 1e-12);
    EXPECT_GT(s.mean_entropy, 0.5);
  }
}

TEST(AttentionStatistics, UniformAttentionHasEntropyLogNAndKeepsTheSelectedShare) {
  torch::manual_seed(45);
  const int64_t T = 45, Bs = 4, topk = 3;
  auto q = torch::zeros({1, T, 4, 8}, torch::kFloat64);  // all scores equal
  auto k = torch::randn({1, T, 2, 8}, torch::kFloat64);
  auto v = torch::randn({1, T, 2, 8}, torch::kFloat64);
  auto s = attention_statistics(q, k, v, {Bs, topk, Selection::kGroup}, 16);
  for (int64_t t = 0; t < T; ++t) {
    const double kept_tokens = std::min<int64_t>(t / Bs, topk - 1) * Bs + t % Bs + 1;
    for (int64_t h = 0; h < 4; ++h) {
      EXPECT_NEAR(s.entropy[0][t][h].item<double>(), std::log(t + 1.0), 1e-12) << "t=" << t;
      EXPECT_NEAR(s.sparsity[0][t][h].item<double>(), kept_tokens / (t + 1), 1e-12) << "t=" << t;
    }
  }
}

TEST(AttentionStatistics, MatchesTheDefinitionsPerQuery) {
  torch::manual_seed(42);
  struct Case {
    int64_t T, Hq, Hkv, Bs, topk;
  };
  for (const auto& c : std::vector<Case>{{38, 4, 2, 4, 3}, {29, 4, 4, 3, 2}, {33, 8, 1, 2, 4}}) {
    auto q = torch::randn({2, c.T, c.Hq, 6}, torch::kFloat64) * 2;
    auto k = torch::randn({2, c.T, c.Hkv, 6}, torch::kFloat64);
    auto v = torch::randn({2, c.T, c.Hkv, 6}, torch::kFloat64);
    for (auto variant : {Selection::kGroup, Selection::kHead}) {
      const SparseSpec spec{c.Bs, c.topk, variant};
      auto selection = test::brute_force_selection(q, k, c.Bs, c.topk, variant == Selection::kGroup);
      auto s = attention_statistics(q, k, v, spec, 7);
      auto o_full = test::brute_force_attention(q, k, v, [](int64_t, int64_t t, int64_t) { return test::causal_tokens(t); });
      auto o_sparse = sparse_attention_reference(q, k, v, spec, 7, selection);
      auto qa = q.accessor<double, 4>();
      auto ka = k.accessor<double, 4>();
      auto va = v.accessor<double, 4>();
      const int64_t G = c.Hq / c.Hkv;
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t t = 0; t < c.T; ++t)
          for (int64_t i = 0; i < c.Hq; ++i) {
            std::vector<double> p(t + 1);
            double z = 0;
            for (int64_t u = 0; u <= t; ++u) {
              double dot = 0;
              for (int64_t d = 0; d < 6; ++d) dot += qa[b][t][i][d] * ka[b][u][i / G][d];
              p[u] = std::exp(dot / std::sqrt(6.0));
              z += p[u];
            }
            for (auto& x : p) x /= z;
            const auto chosen = test::selected_tokens(selection, c.Bs, c.Hq, b, t, i);
            std::vector<bool> in_set(t + 1, false);
            double kept = 0, entropy = 0, kl = 0, max_dropped_norm = 0;
            for (int64_t u : chosen) {
              in_set[u] = true;
              kept += p[u];
            }
            for (int64_t u = 0; u <= t; ++u) {
              entropy -= p[u] * std::log(p[u]);
              if (!in_set[u]) {
                double norm = 0;
                for (int64_t d = 0; d < 6; ++d) norm += va[b][u][i / G][d] * va[b][u][i / G][d];
                max_dropped_norm = std::max(max_dropped_norm, std::sqrt(norm));
              }
            }
            for (int64_t u : chosen) kl += (p[u] / kept) * std::log((p[u] / kept) / p[u]);
            const double error = (o_full[b][t][i] - o_sparse[b][t][i]).norm().item<double>();
            const double bound = (1 - kept) * (max_dropped_norm + o_sparse[b][t][i].norm().item<double>());
            EXPECT_NEAR(s.sparsity[b][t][i].item<double>(), kept, 1e-12);
            EXPECT_NEAR(s.dropped[b][t][i].item<double>(), 1 - kept, 1e-12);
            EXPECT_NEAR(s.entropy[b][t][i].item<double>(), entropy, 1e-12);
            EXPECT_NEAR(s.kl[b][t][i].item<double>(), kl, 1e-12);
            EXPECT_NEAR(s.output_error[b][t][i].item<double>(), error, 1e-12);
            EXPECT_NEAR(s.error_bound[b][t][i].item<double>(), bound, 1e-12);
          }
      EXPECT_LT(max_abs(s.sparsity + s.dropped - 1), 1e-12);
      EXPECT_LT(max_abs(s.kl + s.sparsity.log()), 1e-12);
      // Theorem 1 holds everywhere, and the case is not trivial.
      EXPECT_TRUE((s.output_error <= s.error_bound + 1e-12).all().item<bool>());
      EXPECT_GT(s.mean_dropped, 0.01);
      EXPECT_NEAR(s.mean_sparsity + s.mean_dropped, 1.0, 1e-12);
      // The same statistics from the selection select_blocks computes, in other chunks.
      auto again = attention_statistics(q, k, v, spec, 100, select_blocks(q, k, spec, 5));
      EXPECT_LT(max_abs(again.kl - s.kl), 1e-12);
    }
  }
}

TEST(AttentionStatistics, FloatInputsGiveFloatStatistics) {
  torch::manual_seed(43);
  auto q = torch::randn({1, 40, 4, 8});
  auto k = torch::randn({1, 40, 2, 8});
  auto v = torch::randn({1, 40, 2, 8});
  const SparseSpec spec{4, 3, Selection::kHead};
  auto single = attention_statistics(q, k, v, spec, 16);
  auto dbl = attention_statistics(q.to(torch::kFloat64), k.to(torch::kFloat64), v.to(torch::kFloat64), spec, 16);
  EXPECT_EQ(single.sparsity.scalar_type(), torch::kFloat32);
  EXPECT_LT(max_abs(single.sparsity.to(torch::kFloat64) - dbl.sparsity), 1e-5);
  EXPECT_LT(max_abs(single.entropy.to(torch::kFloat64) - dbl.entropy), 1e-5);
}

TEST(AttentionStatistics, AKeptMassBelowFloat32sRangeStillGivesAFiniteKl) {
  // Query 7 puts all but e^-300 of its mass on key 0 (score 300), outside the selection of its
  // own block {6, 7}: the kept probabilities underflow in float32, their logarithm does not.
  const int64_t T = 8, Bs = 2;
  auto q = torch::zeros({1, T, 2, 4});
  auto k = torch::zeros({1, T, 1, 4});
  auto v = torch::randn({1, T, 1, 4});
  q.index_put_({0, 7, torch::indexing::Slice(), 0}, 100.0);
  k.index_put_({0, 0, 0, 0}, 6.0);
  auto own_block = torch::div(torch::arange(T), Bs, "floor").view({1, T, 1, 1});
  const SparseSpec spec{Bs, 1, Selection::kGroup};
  auto single = attention_statistics(q, k, v, spec, 3, own_block);
  auto dbl = attention_statistics(q.to(torch::kFloat64), k.to(torch::kFloat64), v.to(torch::kFloat64), spec, 3,
                                  own_block);
  for (int64_t h = 0; h < 2; ++h) {
    EXPECT_NEAR(single.kl[0][7][h].item<double>(), 300.0 - std::log(2.0), 1e-3);
    EXPECT_NEAR(dbl.kl[0][7][h].item<double>(), 300.0 - std::log(2.0), 1e-9);
    EXPECT_EQ(single.sparsity[0][7][h].item<float>(), 0.0f);
  }
  EXPECT_TRUE(std::isfinite(single.mean_kl));
  EXPECT_TRUE(torch::isfinite(single.output_error).all().item<bool>());
  // The sparse output there is the mean of values 6 and 7.
  const auto expected = (v[0][6][0] + v[0][7][0]) / 2 - v[0][0][0];
  EXPECT_NEAR(single.output_error[0][7][0].item<double>(), expected.norm().item<double>(), 1e-4);
}

TEST(AttentionStatistics, ModelHelperCollectsEveryLayer) {
  config::ModelConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 50;
  c.init_std = 0.3;
  model::LlamaForCausalLM m(c);
  m->initialize(9);
  torch::manual_seed(44);
  auto tokens = torch::randint(0, 50, {2, 37}, torch::kInt64);
  model::ForwardOptions options;
  options.mode = Mode::kSparse;
  options.sparse = {4, 2, Selection::kGroup};
  options.query_chunk = 16;

  auto stats = model_attention_statistics(m, tokens, options);
  ASSERT_EQ(stats.size(), 3u);
  // The same numbers from q, k and v captured through the hook.
  std::vector<std::vector<torch::Tensor>> captured(3);
  options.on_attention_inputs = [&](int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v) { captured[layer] = {q.detach(), k.detach(), v.detach()}; };
  m->forward(tokens, options);
  for (int64_t l = 0; l < 3; ++l) {
    ASSERT_EQ(stats[l].sparsity.sizes(), (std::vector<int64_t>{2, 37, 4}));
    EXPECT_FALSE(stats[l].sparsity.requires_grad());
    EXPECT_GT(stats[l].mean_sparsity, 0.1);
    EXPECT_LT(stats[l].mean_sparsity, 1.0);
    auto direct = attention_statistics(captured[l][0], captured[l][1], captured[l][2], options.sparse, 16);
    EXPECT_TRUE(torch::allclose(direct.sparsity, stats[l].sparsity));
    EXPECT_TRUE(torch::allclose(direct.entropy, stats[l].entropy));
  }
  // A budget that covers the sequence keeps all the mass in every layer.
  options.sparse.topk = 10;
  for (const auto& s : model_attention_statistics(m, tokens, options)) EXPECT_NEAR(s.mean_sparsity, 1.0, 1e-6);
}

}  // namespace
}  // namespace ssa::attention
