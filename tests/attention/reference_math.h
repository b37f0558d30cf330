// Brute-force float64 versions of the definitions in ssa-method.md section 2, written as plain
// loops over positions, heads and blocks (independent of the vectorised implementation), and a
// finite-difference gradient check.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "ssa/compat/torch_compat.h"

namespace ssa::test {

inline torch::Tensor as_double(const torch::Tensor& x) { return x.detach().to(torch::kFloat64).contiguous(); }

// Selection int32 [B, T, H_sel, K] by the definition: current block, then past blocks j < c by
// decreasing importance (`group`: sum over the group's heads of softmax_j(q.kbar_j / sqrt(D));
// `head`: q.kbar_j), -1 padding.
inline torch::Tensor brute_force_selection(const torch::Tensor& q_in, const torch::Tensor& k_in, int64_t block_size,
                                           int64_t topk, bool group) {
  auto q = as_double(q_in), k = as_double(k_in);
  auto qa = q.accessor<double, 4>();
  auto ka = k.accessor<double, 4>();
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3), Hkv = k.size(2), G = Hq / Hkv;
  const int64_t num_blocks = (T + block_size - 1) / block_size;
  const int64_t K = std::min(topk, num_blocks);
  const int64_t H_sel = group ? Hkv : Hq;
  auto out = torch::full({B, T, H_sel, K}, -1, torch::kInt32);
  auto oa = out.accessor<int32_t, 4>();
  for (int64_t b = 0; b < B; ++b) {
    // kbar[j][h][d] for complete blocks.
    std::vector<std::vector<std::vector<double>>> kbar(T / block_size,
                                                       std::vector<std::vector<double>>(Hkv, std::vector<double>(D, 0.0)));
    for (int64_t j = 0; j < T / block_size; ++j)
      for (int64_t h = 0; h < Hkv; ++h)
        for (int64_t d = 0; d < D; ++d) {
          double sum = 0;
          for (int64_t u = j * block_size; u < (j + 1) * block_size; ++u) sum += ka[b][u][h][d];
          kbar[j][h][d] = sum / block_size;
        }
    auto dot = [&](int64_t t, int64_t i, int64_t j) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += qa[b][t][i][d] * kbar[j][i / G][d];
      return s;
    };
    for (int64_t t = 0; t < T; ++t) {
      const int64_t c = t / block_size;
      for (int64_t s = 0; s < H_sel; ++s) {
        std::vector<std::pair<double, int64_t>> importance;
        for (int64_t j = 0; j < c; ++j) importance.push_back({0.0, j});
        if (group) {
          for (int64_t i = s * G; i < (s + 1) * G; ++i) {
            std::vector<double> logits(c);
            double max_logit = -INFINITY;
            for (int64_t j = 0; j < c; ++j) {
              logits[j] = dot(t, i, j) / std::sqrt(static_cast<double>(D));
              max_logit = std::max(max_logit, logits[j]);
            }
            double z = 0;
            for (int64_t j = 0; j < c; ++j) z += std::exp(logits[j] - max_logit);
            for (int64_t j = 0; j < c; ++j) importance[j].first += std::exp(logits[j] - max_logit) / z;
          }
        } else {
          for (int64_t j = 0; j < c; ++j) importance[j].first = dot(t, s, j);
        }
        std::stable_sort(importance.begin(), importance.end(),
                         [](const auto& a, const auto& b) { return a.first > b.first; });
        oa[b][t][s][0] = static_cast<int32_t>(c);
        for (int64_t r = 0; r + 1 < K && r < c; ++r) oa[b][t][s][r + 1] = static_cast<int32_t>(importance[r].second);
      }
    }
  }
  return out;
}

// The tokens u <= t of the blocks `selection` (int32 [B, T, H_sel, K]) names for (b, t, query
// head i); query head i uses selection head i / (Hq / H_sel).
inline std::vector<int64_t> selected_tokens(const torch::Tensor& selection, int64_t block_size, int64_t num_heads,
                                            int64_t b, int64_t t, int64_t i) {
  auto sa = selection.accessor<int32_t, 4>();
  const int64_t T = selection.size(1);
  const int64_t sel_head = i / (num_heads / selection.size(2));
  std::vector<int64_t> tokens;
  for (int64_t e = 0; e < selection.size(3); ++e) {
    const int64_t block = sa[b][t][sel_head][e];
    if (block < 0) continue;
    for (int64_t u = block * block_size; u < std::min((block + 1) * block_size, T); ++u)
      if (u <= t) tokens.push_back(u);
  }
  return tokens;
}

// softmax over `tokens` of q_i(t).k_u / sqrt(D) applied to v: [B, T, Hq, D] float64. `tokens_of`
// names the attended tokens of (b, t, i).
inline torch::Tensor brute_force_attention(
    const torch::Tensor& q_in, const torch::Tensor& k_in, const torch::Tensor& v_in,
    const std::function<std::vector<int64_t>(int64_t b, int64_t t, int64_t i)>& tokens_of) {
  auto q = as_double(q_in), k = as_double(k_in), v = as_double(v_in);
  auto qa = q.accessor<double, 4>();
  auto ka = k.accessor<double, 4>();
  auto va = v.accessor<double, 4>();
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3), G = Hq / k.size(2);
  auto out = torch::zeros({B, T, Hq, D}, torch::kFloat64);
  auto oa = out.accessor<double, 4>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < Hq; ++i) {
        const auto tokens = tokens_of(b, t, i);
        std::vector<double> logits;
        double max_logit = -INFINITY;
        for (int64_t u : tokens) {
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += qa[b][t][i][d] * ka[b][u][i / G][d];
          logits.push_back(s / std::sqrt(static_cast<double>(D)));
          max_logit = std::max(max_logit, logits.back());
        }
        double z = 0;
        for (double l : logits) z += std::exp(l - max_logit);
        for (size_t n = 0; n < tokens.size(); ++n) {
          const double w = std::exp(logits[n] - max_logit) / z;
          for (int64_t d = 0; d < D; ++d) oa[b][t][i][d] += w * va[b][tokens[n]][i / G][d];
        }
      }
  return out;
}

inline std::vector<int64_t> causal_tokens(int64_t t) {
  std::vector<int64_t> tokens;
  for (int64_t u = 0; u <= t; ++u) tokens.push_back(u);
  return tokens;
}

// Checks the autograd gradient of the scalar f(inputs) against central differences, element by
// element, for float64 inputs.
inline void expect_gradients_match_finite_differences(
    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& f, std::vector<torch::Tensor> inputs,
    double eps = 1e-6, double tolerance = 1e-7) {
  for (auto& x : inputs) x = x.detach().to(torch::kFloat64).clone().requires_grad_(true);
  auto analytic = torch::autograd::grad({f(inputs)}, inputs);
  torch::NoGradGuard no_grad;
  for (size_t n = 0; n < inputs.size(); ++n) {
    std::vector<torch::Tensor> probe;
    for (auto& x : inputs) probe.push_back(x.detach().clone());
    auto flat = probe[n].view({-1});
    auto grad = analytic[n].contiguous().view({-1});
    for (int64_t e = 0; e < flat.numel(); ++e) {
      const double original = flat[e].item<double>();
      flat[e] = original + eps;
      const double up = f(probe).item<double>();
      flat[e] = original - eps;
      const double down = f(probe).item<double>();
      flat[e] = original;
      const double numeric = (up - down) / (2 * eps);
      ASSERT_NEAR(grad[e].item<double>(), numeric, tolerance * std::max(1.0, std::fabs(numeric)))
          << "input " << n << " element " << e;
    }
  }
}

}  // namespace ssa::test
