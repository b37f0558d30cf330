// Plain float64 loops that define block-sparse attention (ssa-method.md section 2) for the kernel
// tests: block importance and top-k, and per-row forward and backward. Written independently of
// the ATen reference path so that each checks the other; slow, so tests keep shapes small or
// check sampled rows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "ssa/attention/attention_spec.h"
#include "ssa/compat/torch_compat.h"

namespace ssa::test {

class SparseReference {
 public:
  // q [B, T, Hq, D], k, v [B, T, Hkv, D] (any device and dtype; copied to CPU float64);
  // selection int32 [B, T, H_sel, K] or undefined (then only importance() is usable).
  SparseReference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                  const torch::Tensor& selection, const attention::SparseSpec& spec)
      : spec_(spec) {
    q_ = q.to(torch::kCPU, torch::kFloat64).contiguous();
    k_ = k.to(torch::kCPU, torch::kFloat64).contiguous();
    if (v.defined()) v_ = v.to(torch::kCPU, torch::kFloat64).contiguous();
    if (selection.defined()) sel_ = selection.to(torch::kCPU).contiguous();
    B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3), Hkv = k.size(2);
    G = Hq / Hkv;
    Bs = spec.block_size;
    group = spec.selection == attention::Selection::kGroup;
    Hsel = group ? Hkv : Hq;
    R = Hq / Hsel;
    K = std::min(spec.topk, (T + Bs - 1) / Bs);
    scale = 1.0 / std::sqrt(static_cast<double>(D));
    // Block means of the complete blocks, [B, nbc, Hkv, D].
    const int64_t nbc = T / Bs;
    kbar_.assign(static_cast<size_t>(B * nbc * Hkv * D), 0.0);
    const double* kp = k_.data_ptr<double>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < nbc; ++j)
        for (int64_t h = 0; h < Hkv; ++h)
          for (int64_t d = 0; d < D; ++d) {
            double s = 0;
            for (int64_t u = 0; u < Bs; ++u) s += kp[((b * T + j * Bs + u) * Hkv + h) * D + d];
            kbar_[((b * nbc + j) * Hkv + h) * D + d] = s / Bs;
          }
  }

  int64_t B, T, Hq, Hkv, Hsel, D, G, R, Bs, K;
  bool group;
  double scale;

  const double* q_row(int64_t b, int64_t t, int64_t hq) const { return q_.data_ptr<double>() + ((b * T + t) * Hq + hq) * D; }
  const double* k_row(int64_t b, int64_t u, int64_t hk) const { return k_.data_ptr<double>() + ((b * T + u) * Hkv + hk) * D; }
  const double* v_row(int64_t b, int64_t u, int64_t hk) const { return v_.data_ptr<double>() + ((b * T + u) * Hkv + hk) * D; }
  int32_t selected(int64_t b, int64_t t, int64_t hs, int64_t slot) const {
    return sel_.data_ptr<int32_t>()[((b * T + t) * Hsel + hs) * K + slot];
  }

  // Importance of every past block j < t / Bs for selection row (b, t, hs).
  std::vector<double> importance(int64_t b, int64_t t, int64_t hs) const {
    const int64_t c = t / Bs, nbc = T / Bs;
    std::vector<double> out(static_cast<size_t>(c), 0.0);
    const int64_t hk = group ? hs : hs / G;
    const int64_t first = group ? hs * G : hs, count = group ? G : 1;
    for (int64_t hq = first; hq < first + count; ++hq) {
      const double* qr = q_row(b, t, hq);
      std::vector<double> s(static_cast<size_t>(c));
      for (int64_t j = 0; j < c; ++j) {
        const double* kb = kbar_.data() + ((b * nbc + j) * Hkv + hk) * D;
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += qr[d] * kb[d];
        s[j] = dot;
      }
      if (group) {
        double mx = -std::numeric_limits<double>::infinity();
        for (double x : s) mx = std::max(mx, x * scale);
        double z = 0;
        for (double x : s) z += std::exp(x * scale - mx);
        for (int64_t j = 0; j < c; ++j) out[j] += std::exp(s[j] * scale - mx) / z;
      } else {
        out = s;
      }
    }
    return out;
  }

  // Calls fn(u) for every key the row attends to (selected blocks, u <= t).
  void for_each_key(int64_t b, int64_t t, int64_t hq, const std::function<void(int64_t)>& fn) const {
    const int64_t hs = hq / R;
    for (int64_t slot = 0; slot < K; ++slot) {
      const int32_t j = selected(b, t, hs, slot);
      if (j < 0) continue;
      for (int64_t u = j * Bs; u < std::min((j + 1) * Bs, T); ++u) {
        if (u <= t) fn(u);
      }
    }
  }

  double score(int64_t b, int64_t t, int64_t hq, int64_t u) const {
    const double* qr = q_row(b, t, hq);
    const double* kr = k_row(b, u, hq / G);
    double dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += qr[d] * kr[d];
    return dot * scale;
  }

  // Output row and natural log-sum-exp.
  double forward_row(int64_t b, int64_t t, int64_t hq, std::vector<double>& out) const {
    double mx = -std::numeric_limits<double>::infinity();
    for_each_key(b, t, hq, [&](int64_t u) { mx = std::max(mx, score(b, t, hq, u)); });
    double z = 0;
    out.assign(static_cast<size_t>(D), 0.0);
    for_each_key(b, t, hq, [&](int64_t u) {
      const double p = std::exp(score(b, t, hq, u) - mx);
      z += p;
      const double* vr = v_row(b, u, hq / G);
      for (int64_t d = 0; d < D; ++d) out[d] += p * vr[d];
    });
    for (double& x : out) x /= z;
    return mx + std::log(z);
  }

  // Gradient contributions of one row given its output-gradient row `dout`: returns dq and calls
  // key_grad(u, dS (scaled), P) for each attended key, from which dk += dS q, dv += P dout.
  std::vector<double> backward_row(int64_t b, int64_t t, int64_t hq, const double* dout,
                                   const std::function<void(int64_t, double, double)>& key_grad) const {
    std::vector<double> out;
    const double lse = forward_row(b, t, hq, out);
    double delta = 0;
    for (int64_t d = 0; d < D; ++d) delta += out[d] * dout[d];
    std::vector<double> dq(static_cast<size_t>(D), 0.0);
    for_each_key(b, t, hq, [&](int64_t u) {
      const double p = std::exp(score(b, t, hq, u) - lse);
      const double* vr = v_row(b, u, hq / G);
      double dp = 0;
      for (int64_t d = 0; d < D; ++d) dp += dout[d] * vr[d];
      const double ds = p * (dp - delta) * scale;
      const double* kr = k_row(b, u, hq / G);
      for (int64_t d = 0; d < D; ++d) dq[d] += ds * kr[d];
      key_grad(u, ds, p);
    });
    return dq;
  }

 private:
  attention::SparseSpec spec_;
  torch::Tensor q_, k_, v_, sel_;
  std::vector<double> kbar_;
};

}  // namespace ssa::test
