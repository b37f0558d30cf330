// The reference paths of the fused layers (rms_norm_reference, swiglu_reference,
// apply_rope_reference, output_gate_reference) on the CPU in float64: their outputs against the
// definitions, and their autograd gradients against the closed-form backward passes that
// kernels/rms_norm.cu, swiglu.cu, rope.cu and output_gate.cu implement. The GPU tests then compare
// the kernels with these references.
#include <gtest/gtest.h>

#include "ssa/model/output_gate.h"
#include "ssa/model/rms_norm.h"
#include "ssa/model/rope.h"
#include "ssa/model/swiglu.h"

namespace ssa::model {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

void expect_close(const torch::Tensor& got, const torch::Tensor& want, double tolerance, const std::string& what) {
  const double error = (got - want).abs().max().item<double>();
  EXPECT_LE(error, tolerance * std::max(1.0, want.abs().max().item<double>())) << what;
}

TEST(LayerReferences, RmsNormAndItsClosedFormBackward) {
  torch::manual_seed(11);
  const int64_t rows = 6, dim = 24;
  const double eps = 1e-5;
  auto x = (torch::randn({rows, dim}, kF64) * torch::rand({rows, 1}, kF64) * 3).requires_grad_(true);
  auto w = (1 + 0.3 * torch::randn({dim}, kF64)).requires_grad_(true);
  const auto dy = torch::randn({rows, dim}, kF64);
  const auto y = rms_norm_reference(x, w, eps);
  y.backward(dy);

  const auto xd = x.detach(), wd = w.detach();
  const auto r = torch::rsqrt(xd.pow(2).mean(-1, true) + eps);
  const auto n = xd * r;
  // The reference normalises in float32 as HF does, whatever the input dtype: float32 accuracy.
  constexpr double kFloat32Accuracy = 1e-5;
  expect_close(y.detach(), wd * n, kFloat32Accuracy, "y = w * x / rms");
  // The kernel's backward: dn = dy w, dx = r (dn - n mean(dn n)), dweight = sum over rows of dy n.
  const auto dn = dy * wd;
  expect_close(x.grad(), r * (dn - n * (dn * n).mean(-1, true)), kFloat32Accuracy, "dx");
  expect_close(w.grad(), (dy * n).sum(0), kFloat32Accuracy, "dweight");
}

TEST(LayerReferences, SwigluAndItsClosedFormBackward) {
  torch::manual_seed(12);
  auto g = (torch::randn({5, 40}, kF64) * 3).requires_grad_(true);
  auto u = torch::randn({5, 40}, kF64).requires_grad_(true);
  const auto dy = torch::randn({5, 40}, kF64);
  const auto y = swiglu_reference(g, u);
  y.backward(dy);

  const auto gd = g.detach(), ud = u.detach();
  const auto s = torch::sigmoid(gd);
  expect_close(y.detach(), gd * s * ud, 1e-12, "y = silu(g) u");
  // The kernel's backward: dg = dy u s (1 + g (1 - s)), du = dy g s.
  expect_close(g.grad(), dy * ud * s * (1 + gd * (1 - s)), 1e-10, "dgate");
  expect_close(u.grad(), dy * gd * s, 1e-10, "dup");
}

TEST(LayerReferences, HeadwiseOutputGateAndItsClosedFormBackward) {
  torch::manual_seed(14);
  auto o = torch::randn({2, 3, 4, 8}, kF64).requires_grad_(true);
  auto g = (torch::randn({2, 3, 4}, kF64) * 4).requires_grad_(true);
  const auto dy = torch::randn({2, 3, 4, 8}, kF64);
  const auto y = output_gate_reference(o, g);
  y.backward(dy);
  // Through the dispatcher on the CPU: the reference itself.
  EXPECT_TRUE(torch::equal(output_gate(o, g, true), y));

  const auto od = o.detach(), s = torch::sigmoid(g.detach()).unsqueeze(-1);
  expect_close(y.detach(), od * s, 1e-12, "y = o sigmoid(g), one gate per head");
  // The kernel's backward: do = dy s, dg = s (1 - s) sum over the head dimension of dy o.
  expect_close(o.grad(), dy * s, 1e-12, "do");
  expect_close(g.grad(), (s * (1 - s) * (dy * od).sum(-1, true)).squeeze(-1), 1e-12, "dg");
}

TEST(LayerReferences, ElementwiseOutputGateAndItsClosedFormBackward) {
  torch::manual_seed(15);
  auto o = torch::randn({2, 3, 4, 8}, kF64).requires_grad_(true);
  auto g = (torch::randn({2, 3, 4, 8}, kF64) * 4).requires_grad_(true);
  const auto dy = torch::randn({2, 3, 4, 8}, kF64);
  const auto y = output_gate_reference(o, g);
  y.backward(dy);

  const auto od = o.detach(), s = torch::sigmoid(g.detach());
  expect_close(y.detach(), od * s, 1e-12, "y = o sigmoid(g), one gate per element");
  expect_close(o.grad(), dy * s, 1e-12, "do");
  expect_close(g.grad(), s * (1 - s) * dy * od, 1e-12, "dg");
}

TEST(LayerReferences, RopeBackwardIsTheTransposedRotation) {
  torch::manual_seed(13);
  config::ModelConfig c;
  c.head_dim = 16;
  const auto positions = torch::tensor({5, 6, 0, 1, 900}, torch::kInt64).unsqueeze(0);
  auto tables = rope_tables(rope_parameters(c), positions);
  tables.cos = tables.cos.to(torch::kFloat64);
  tables.sin = tables.sin.to(torch::kFloat64);
  auto x = torch::randn({1, 5, 3, 16}, kF64).requires_grad_(true);
  const auto dy = torch::randn({1, 5, 3, 16}, kF64);
  apply_rope_reference(x, tables).backward(dy);

  // The kernel's backward for i < h = D/2: dx[i] = dy[i] cos[i] + dy[i+h] sin[i+h],
  // dx[i+h] = dy[i+h] cos[i+h] - dy[i] sin[i].
  const int64_t h = 8;
  const auto cos = tables.cos.unsqueeze(2), sin = tables.sin.unsqueeze(2);
  const auto lo = dy.narrow(-1, 0, h), hi = dy.narrow(-1, h, h);
  const auto want = torch::cat({lo * cos.narrow(-1, 0, h) + hi * sin.narrow(-1, h, h),
                                hi * cos.narrow(-1, h, h) - lo * sin.narrow(-1, 0, h)},
                               -1);
  expect_close(x.grad(), want, 1e-12, "dx");
}

}  // namespace
}  // namespace ssa::model
