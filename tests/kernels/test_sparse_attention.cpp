// The sparse attention kernels (kernels/sparse_attention.cu), forward and backward, against
// float64 loops and the ATen reference path; poisoned outputs; the autograd binding.
#include <ATen/Parallel.h>
#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <iostream>
#include <numeric>

#include "kernel_test_util.h"
#include "sparse_attention.h"
#include "sparse_reference.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/attention/sparse_attention_cuda.h"

namespace ssa::test {
namespace {

kernels::SparseAttentionShape shape_of(const KernelCase& c, const torch::Tensor& selection) {
  kernels::SparseAttentionShape s;
  s.batch = c.batch;
  s.length = c.length;
  s.q_heads = c.q_heads;
  s.kv_heads = c.kv_heads;
  s.selection_heads = selection.size(2);
  s.head_dim = c.head_dim;
  s.block_size = c.block_size;
  s.slots = selection.size(3);
  return s;
}

struct KernelResults {
  torch::Tensor out, lse, dq, dk, dv;
};

// Runs the raw launchers on outputs filled with NaN, so an element left unwritten fails: the
// forward and the backward (from that forward's output) with `plans`.
KernelResults run_kernels(const KernelCase& c, const Inputs& in, const torch::Tensor& selection,
                          const KernelPlans& plans) {
  const auto shape = shape_of(c, selection);
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto bytes = [&](size_t n) { return torch::empty({static_cast<int64_t>(std::max<size_t>(n, 1))},
                                                         in.q.options().dtype(torch::kUInt8)); };
  KernelResults r;
  r.out = torch::full_like(in.q, nan);
  r.lse = torch::full({c.batch, c.length, c.q_heads}, nan, in.q.options().dtype(torch::kFloat32));
  auto forward_workspace = bytes(kernels::sparse_attention_forward_workspace_bytes(shape, plans.forward));
  kernels::sparse_attention_forward(bf16_data(in.q), bf16_data(in.k), bf16_data(in.v), selection.data_ptr<int32_t>(),
                                    bf16_data(r.out), r.lse.data_ptr<float>(), forward_workspace.data_ptr(), shape,
                                    stream, plans.forward);
  r.dq = torch::full_like(in.q, nan);
  r.dk = torch::full_like(in.k, nan);
  r.dv = torch::full_like(in.v, nan);
  auto workspace = bytes(kernels::sparse_attention_backward_workspace_bytes(shape, plans.backward));
  kernels::sparse_attention_backward(bf16_data(in.q), bf16_data(in.k), bf16_data(in.v), bf16_data(r.out), bf16_data(in.grad_out),
                                     r.lse.data_ptr<float>(), selection.data_ptr<int32_t>(), bf16_data(r.dq),
                                     bf16_data(r.dk), bf16_data(r.dv), workspace.data_ptr(), shape, stream,
                                     plans.backward);
  torch::cuda::synchronize();
  return r;
}

struct Expected {
  torch::Tensor out, lse, dq, dk, dv;  // float64 CPU
};

// Every row, in parallel over (batch, KV head): each task owns its rows and its keys' gradients.
Expected full_reference(const SparseReference& ref, const torch::Tensor& grad_out) {
  const auto go = grad_out.to(torch::kCPU, torch::kFloat64).contiguous();
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  Expected e;
  e.out = torch::zeros({ref.B, ref.T, ref.Hq, ref.D}, f64);
  e.lse = torch::zeros({ref.B, ref.T, ref.Hq}, f64);
  e.dq = torch::zeros({ref.B, ref.T, ref.Hq, ref.D}, f64);
  e.dk = torch::zeros({ref.B, ref.T, ref.Hkv, ref.D}, f64);
  e.dv = torch::zeros({ref.B, ref.T, ref.Hkv, ref.D}, f64);
  double* out = e.out.data_ptr<double>();
  double* lse = e.lse.data_ptr<double>();
  double* dq = e.dq.data_ptr<double>();
  double* dk = e.dk.data_ptr<double>();
  double* dv = e.dv.data_ptr<double>();
  const double* g = go.data_ptr<double>();
  const int64_t D = ref.D;
  at::parallel_for(0, ref.B * ref.Hkv, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / ref.Hkv, hk = task % ref.Hkv;
      for (int64_t t = 0; t < ref.T; ++t) {
        for (int64_t hq = hk * ref.G; hq < (hk + 1) * ref.G; ++hq) {
          const int64_t row = (b * ref.T + t) * ref.Hq + hq;
          std::vector<double> o;
          lse[row] = ref.forward_row(b, t, hq, o);
          std::copy(o.begin(), o.end(), out + row * D);
          const double* dout = g + row * D;
          const double* qr = ref.q_row(b, t, hq);
          const auto dqr = ref.backward_row(b, t, hq, dout, [&](int64_t u, double ds, double p) {
            double* dkr = dk + ((b * ref.T + u) * ref.Hkv + hk) * D;
            double* dvr = dv + ((b * ref.T + u) * ref.Hkv + hk) * D;
            for (int64_t d = 0; d < D; ++d) {
              dkr[d] += ds * qr[d];
              dvr[d] += p * dout[d];
            }
          });
          std::copy(dqr.begin(), dqr.end(), dq + row * D);
        }
      }
    }
  });
  return e;
}

void check_full(const Expected& e, const KernelResults& r) {
  expect_close("out", r.out, e.out, 1e-2, 3e-2);
  EXPECT_LE(max_abs_error(r.lse, e.lse), 1e-3) << "lse";
  expect_close("dq", r.dq, e.dq, 2e-2, 5e-2);
  expect_close("dk", r.dk, e.dk, 2e-2, 5e-2);
  expect_close("dv", r.dv, e.dv, 2e-2, 5e-2);
}

// Long sequences: rows of sampled tokens for out, lse, dq; sampled keys for dk, dv.
void check_sampled(const KernelCase& c, const Inputs& in, const torch::Tensor& selection, const KernelResults& r,
                   uint64_t seed) {
  const SparseReference ref(in.q, in.k, in.v, selection, c.spec());
  const auto go = in.grad_out.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* g = go.data_ptr<double>();
  const auto out = r.out.cpu().to(torch::kFloat64).contiguous();
  const auto lse = r.lse.cpu().to(torch::kFloat64).contiguous();
  const auto dq = r.dq.cpu().to(torch::kFloat64).contiguous();
  const auto dk = r.dk.cpu().to(torch::kFloat64).contiguous();
  const auto dv = r.dv.cpu().to(torch::kFloat64).contiguous();
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick_t(0, c.length - 1), pick_b(0, c.batch - 1);
  const int64_t D = c.head_dim;
  std::vector<double> got_rows, want_rows, got_dq, want_dq;
  for (int i = 0; i < 24; ++i) {
    const int64_t b = pick_b(rng), t = i < 2 ? (i == 0 ? 0 : c.length - 1) : pick_t(rng);
    for (int64_t hq = 0; hq < c.q_heads; ++hq) {
      const int64_t row = (b * c.length + t) * c.q_heads + hq;
      std::vector<double> o;
      const double l = ref.forward_row(b, t, hq, o);
      EXPECT_NEAR(lse.data_ptr<double>()[row], l, 1e-3) << "lse at t=" << t << " hq=" << hq;
      const auto dqr = ref.backward_row(b, t, hq, g + row * D, [](int64_t, double, double) {});
      for (int64_t d = 0; d < D; ++d) {
        got_rows.push_back(out.data_ptr<double>()[row * D + d]);
        want_rows.push_back(o[d]);
        got_dq.push_back(dq.data_ptr<double>()[row * D + d]);
        want_dq.push_back(dqr[d]);
      }
    }
  }
  auto as_tensor = [](std::vector<double>& v) {
    return torch::from_blob(v.data(), {static_cast<int64_t>(v.size())}, torch::kFloat64).clone();
  };
  expect_close("out (sampled)", as_tensor(got_rows), as_tensor(want_rows), 1e-2, 3e-2);
  expect_close("dq (sampled)", as_tensor(got_dq), as_tensor(want_dq), 2e-2, 5e-2);

  // dk, dv of sampled keys: every row whose selection holds the key's block contributes.
  std::vector<double> got_k, want_k, got_v, want_v;
  const auto sel = selection.cpu().contiguous();
  // Keys of the second half: fewer rows can select them, which keeps the float64 loops short.
  std::uniform_int_distribution<int64_t> pick_key(c.length / 2, c.length - 1);
  for (int i = 0; i < 4; ++i) {
    const int64_t b = pick_b(rng), u = i == 0 ? c.length - 1 : pick_key(rng);
    const int32_t block = static_cast<int32_t>(u / c.block_size);
    for (int64_t hk = 0; hk < c.kv_heads; ++hk) {
      std::vector<double> wk(static_cast<size_t>(D), 0.0), wv(static_cast<size_t>(D), 0.0);
      for (int64_t t = u; t < c.length; ++t) {
        for (int64_t hq = hk * ref.G; hq < (hk + 1) * ref.G; ++hq) {
          const int64_t hs = hq / ref.R;
          bool picked = false;
          for (int64_t s = 0; s < ref.K && !picked; ++s) picked = ref.selected(b, t, hs, s) == block;
          if (!picked) continue;
          const int64_t row = (b * c.length + t) * c.q_heads + hq;
          const double* qr = ref.q_row(b, t, hq);
          const double* dout = g + row * D;
          ref.backward_row(b, t, hq, dout, [&](int64_t key, double ds, double p) {
            if (key != u) return;
            for (int64_t d = 0; d < D; ++d) {
              wk[d] += ds * qr[d];
              wv[d] += p * dout[d];
            }
          });
        }
      }
      const int64_t base = ((b * c.length + u) * c.kv_heads + hk) * D;
      for (int64_t d = 0; d < D; ++d) {
        got_k.push_back(dk.data_ptr<double>()[base + d]);
        want_k.push_back(wk[d]);
        got_v.push_back(dv.data_ptr<double>()[base + d]);
        want_v.push_back(wv[d]);
      }
    }
  }
  expect_close("dk (sampled)", as_tensor(got_k), as_tensor(want_k), 2e-2, 5e-2);
  expect_close("dv (sampled)", as_tensor(got_v), as_tensor(want_v), 2e-2, 5e-2);
}

struct AttentionCase {
  KernelCase shape;
  bool random_selection;
};
void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.shape.name() << (c.random_selection ? "_randsel" : ""); }

class SparseAttentionKernelTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(SparseAttentionKernelTest, ForwardAndBackwardMatchFloat64Reference) {
  SSA_REQUIRE_CUDA();
  const KernelCase c = GetParam().shape;
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const Inputs in = random_inputs(c, seed);
  const auto selection =
      GetParam().random_selection ? random_selection(c, seed) : attention::select_blocks_cuda(in.q, in.k, c.spec());
  const bool sampled = c.length > 8192;
  Expected expected;
  if (!sampled) expected = full_reference(SparseReference(in.q, in.k, in.v, selection, c.spec()), in.grad_out);
  for (const auto& plans : every_kernel_plan()) {
    SCOPED_TRACE(plans.name);
    std::cout << "  " << plans.name << "\n";
    const KernelResults r = run_kernels(c, in, selection, plans);
    EXPECT_TRUE(all_finite(r.out)) << "out has unwritten (NaN) elements";
    EXPECT_TRUE(all_finite(r.lse)) << "lse has unwritten (NaN) elements";
    EXPECT_TRUE(all_finite(r.dq)) << "dq has unwritten (NaN) elements";
    EXPECT_TRUE(all_finite(r.dk)) << "dk has unwritten (NaN) elements";
    EXPECT_TRUE(all_finite(r.dv)) << "dv has unwritten (NaN) elements";
    if (sampled) check_sampled(c, in, selection, r, seed);
    else check_full(expected, r);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SparseAttentionKernelTest,
    ::testing::Values(AttentionCase{{2, 700, 8, 2, 64, 16, 16, true}, false},     // group of 4, ragged T
                      AttentionCase{{1, 777, 4, 4, 128, 32, 8, true}, false},     // group of 1, head_dim 128
                      AttentionCase{{2, 600, 4, 2, 64, 64, 4, false}, false},     // head selection, block 64
                      AttentionCase{{1, 600, 8, 1, 128, 16, 64, true}, false},    // group of 8, 64 slots
                      AttentionCase{{1, 500, 16, 1, 64, 128, 4, true}, false},    // group of 16, block 128
                      AttentionCase{{1, 500, 16, 1, 64, 16, 16, false}, false},   // head selection, group of 16
                      AttentionCase{{3, 200, 6, 2, 64, 16, 1, true}, false},      // group of 3, current block only
                      AttentionCase{{1, 1024, 8, 8, 64, 32, 64, false}, false},   // every block: dense causal
                      AttentionCase{{1, 400, 12, 4, 128, 16, 25, false}, false},  // head selection, group of 3
                      AttentionCase{{2, 500, 8, 2, 64, 32, 6, false}, true},      // arbitrary selection
                      AttentionCase{{2, 640, 16, 1, 128, 128, 3, true}, true},    // arbitrary, group 16, D 128
                      AttentionCase{{1, 131072, 4, 1, 64, 16, 16, true}, false},  // 128k tokens, sampled
                      AttentionCase{{1, 32768, 8, 2, 128, 32, 16, false}, false}),  // long, D 128, sampled
    [](const auto& info) {
      return info.param.shape.name() + (info.param.random_selection ? "_randsel" : "");
    });

// The ATen reference path and the kernels compute the same attention for the same selection.
TEST(SparseAttentionKernels, AgreeWithAtenReference) {
  SSA_REQUIRE_CUDA();
  for (const bool group : {true, false}) {
    const KernelCase c{2, 333, 8, 2, 64, 16, 6, group};
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(c.name() + " seed " + std::to_string(seed));
    const Inputs in = random_inputs(c, seed);
    const auto selection = attention::select_blocks_cuda(in.q, in.k, c.spec());
    const auto [out, lse] = attention::sparse_attention_cuda_forward(in.q, in.k, in.v, c.spec(), selection);
    const auto want = attention::sparse_attention_reference(in.q.cpu().to(torch::kFloat32), in.k.cpu().to(torch::kFloat32),
                                                            in.v.cpu().to(torch::kFloat32), c.spec(), 64, selection.cpu());
    expect_close("out vs ATen reference", out, want, 1e-2, 3e-2);
  }
}

// Autograd through sparse_attention_cuda gives the raw kernels' results.
TEST(SparseAttentionKernels, AutogradMatchesRawKernels) {
  SSA_REQUIRE_CUDA();
  const KernelCase c{2, 1000, 8, 2, 64, 16, 16, true};
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const Inputs in = random_inputs(c, seed);
  const auto selection = attention::select_blocks_cuda(in.q, in.k, c.spec());
  const auto shape = shape_of(c, selection);
  const KernelResults raw = run_kernels(
      c, in, selection, {kernels::choose_forward_plan(shape), kernels::choose_backward_plan(shape), "chosen plans"});
  auto q = in.q.clone().requires_grad_(true), k = in.k.clone().requires_grad_(true), v = in.v.clone().requires_grad_(true);
  auto out = attention::sparse_attention_cuda(q, k, v, c.spec(), selection);
  // The key-major forward reduces in float32 in a varying order; bf16 outputs may differ by an ulp.
  EXPECT_LE(relative_error(out.detach(), raw.out), 1e-2);
  out.backward(in.grad_out);
  // dq, dk, dv sum through float32 reductions whose order varies between runs.
  EXPECT_LE(relative_error(q.grad(), raw.dq), 1e-2);
  EXPECT_LE(relative_error(k.grad(), raw.dk), 1e-2);
  EXPECT_LE(relative_error(v.grad(), raw.dv), 1e-2);
}

}  // namespace
}  // namespace ssa::test
