// Document masking on CUDA (attention/document_mask.h): the routing kernel, the sparse attention
// kernels (every forward and backward plan, on poisoned outputs), the autograd binding and
// full attention, against the ATen reference path in float32 on fresh random inputs; and a packed
// row against its documents run alone.
#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <limits>
#include <numeric>

#include "block_select.h"
#include "kernel_test_util.h"
#include "sparse_attention.h"
#include "ssa/attention/document_mask.h"
#include "ssa/attention/full_attention.h"
#include "ssa/attention/kept_attention.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/attention/sparse_attention_cuda.h"

namespace ssa::test {
namespace {

// Documents of random lengths (boundaries inside blocks, on block edges, one-token documents),
// as int32 [B, T] starts on the CPU.
torch::Tensor random_document_starts(const KernelCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x5eed);
  std::uniform_int_distribution<int64_t> length(1, std::max<int64_t>(2, c.length / 3));
  auto positions = torch::empty({c.batch, c.length}, torch::kInt64);
  auto a = positions.accessor<int64_t, 2>();
  for (int64_t b = 0; b < c.batch; ++b) {
    int64_t start = 0, end = length(rng);
    for (int64_t t = 0; t < c.length; ++t) {
      if (t == end) {
        start = t;
        end = t + length(rng);
      }
      a[b][t] = t - start;
    }
  }
  return attention::document_starts(positions);
}

struct Reference {
  torch::Tensor out, dq, dk, dv;  // float32 CPU
};

// The ATen reference path in float32 on the CPU, with its autograd gradients for `grad_out`.
Reference sparse_reference(const Inputs& in, const attention::SparseSpec& spec, const torch::Tensor& selection,
                           const torch::Tensor& starts) {
  auto q = in.q.cpu().to(torch::kFloat32).requires_grad_(true);
  auto k = in.k.cpu().to(torch::kFloat32).requires_grad_(true);
  auto v = in.v.cpu().to(torch::kFloat32).requires_grad_(true);
  Reference r;
  r.out = attention::sparse_attention_reference(q, k, v, spec, 128, selection.cpu(), starts.cpu());
  const auto grads = torch::autograd::grad({r.out}, {q, k, v}, {in.grad_out.cpu().to(torch::kFloat32)});
  r.out = r.out.detach();
  r.dq = grads[0];
  r.dk = grads[1];
  r.dv = grads[2];
  return r;
}

class DocumentMaskKernelTest : public ::testing::TestWithParam<KernelCase> {};

TEST_P(DocumentMaskKernelTest, SelectionStaysInsideDocuments) {
  SSA_REQUIRE_CUDA();
  const KernelCase c = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const Inputs in = random_inputs(c, seed);
  const auto starts = random_document_starts(c, seed);
  const auto starts_cuda = starts.to(torch::kCUDA);

  const kernels::BlockSelectShape shape = block_select_shape(c);
  const int64_t h_sel = c.group ? c.kv_heads : c.q_heads;
  const auto selection = run_block_select(c, in, starts_cuda);
  EXPECT_TRUE(torch::equal(selection, attention::select_blocks_cuda(in.q, in.k, c.spec(), starts_cuda)));

  // Slot 0 the current block, then min(K - 1, candidates) distinct blocks of the document's
  // range [start / Bs, t / Bs), then -1.
  const auto got = selection.cpu();
  const auto sa = got.accessor<int32_t, 4>();
  const auto sta = starts.accessor<int32_t, 2>();
  int64_t failures = 0;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t t = 0; t < c.length; ++t)
      for (int64_t h = 0; h < h_sel; ++h) {
        const int64_t current = t / c.block_size, first = sta[b][t] / c.block_size;
        const int64_t valid = std::min<int64_t>(shape.slots - 1, current - first);
        bool ok = sa[b][t][h][0] == current;
        std::vector<int32_t> seen;
        for (int64_t s = 1; s < shape.slots; ++s) {
          const int32_t j = sa[b][t][h][s];
          if (s <= valid) {
            ok = ok && j >= first && j < current && std::find(seen.begin(), seen.end(), j) == seen.end();
            seen.push_back(j);
          } else {
            ok = ok && j == -1;
          }
        }
        if (!ok && failures++ < 5) ADD_FAILURE() << "row b=" << b << " t=" << t << " h=" << h << " start " << sta[b][t];
      }
  EXPECT_EQ(failures, 0);

  // The ATen reference (float32) picks the same blocks up to near-ties.
  const auto want = attention::select_blocks(in.q.cpu().to(torch::kFloat32), in.k.cpu().to(torch::kFloat32), c.spec(),
                                             128, starts);
  const double agree = got.eq(want).all(-1).to(torch::kFloat64).mean().item<double>();
  EXPECT_GE(agree, 0.98);
}

TEST_P(DocumentMaskKernelTest, AttentionKernelsMatchTheReference) {
  SSA_REQUIRE_CUDA();
  const KernelCase c = GetParam();
  for (const bool arbitrary : {false, true}) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(std::string(arbitrary ? "arbitrary selection" : "routed selection") + ", seed " +
                 std::to_string(seed));
    const Inputs in = random_inputs(c, seed);
    const auto starts_cuda = random_document_starts(c, seed).to(torch::kCUDA);
    const auto selection =
        arbitrary ? random_selection(c, seed) : attention::select_blocks_cuda(in.q, in.k, c.spec(), starts_cuda);
    const Reference want = sparse_reference(in, c.spec(), selection, starts_cuda);

    kernels::SparseAttentionShape shape;
    shape.batch = c.batch;
    shape.length = c.length;
    shape.q_heads = c.q_heads;
    shape.kv_heads = c.kv_heads;
    shape.selection_heads = selection.size(2);
    shape.head_dim = c.head_dim;
    shape.block_size = c.block_size;
    shape.slots = selection.size(3);
    const auto stream = at::cuda::getCurrentCUDAStream().stream();
    const auto bytes = [&](size_t n) {
      return torch::empty({static_cast<int64_t>(std::max<size_t>(n, 1))}, in.q.options().dtype(torch::kUInt8));
    };
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const int32_t* document_start = starts_cuda.data_ptr<int32_t>();
    for (const auto& plans : every_kernel_plan()) {
      SCOPED_TRACE(plans.name);
      auto out = torch::full_like(in.q, nan);
      auto lse = torch::full({c.batch, c.length, c.q_heads}, nan, in.q.options().dtype(torch::kFloat32));
      auto forward_workspace = bytes(kernels::sparse_attention_forward_workspace_bytes(shape, plans.forward));
      kernels::sparse_attention_forward(bf16_data(in.q), bf16_data(in.k), bf16_data(in.v), selection.data_ptr<int32_t>(),
                                        bf16_data(out), lse.data_ptr<float>(), forward_workspace.data_ptr(), shape,
                                        stream, plans.forward, document_start);
      auto dq = torch::full_like(in.q, nan), dk = torch::full_like(in.k, nan), dv = torch::full_like(in.v, nan);
      auto workspace = bytes(kernels::sparse_attention_backward_workspace_bytes(shape, plans.backward));
      kernels::sparse_attention_backward(bf16_data(in.q), bf16_data(in.k), bf16_data(in.v), bf16_data(out), bf16_data(in.grad_out),
                                         lse.data_ptr<float>(), selection.data_ptr<int32_t>(), bf16_data(dq),
                                         bf16_data(dk), bf16_data(dv), workspace.data_ptr(), shape, stream,
                                         plans.backward, document_start);
      torch::cuda::synchronize();
      EXPECT_TRUE(all_finite(out)) << "out has unwritten or NaN elements";
      EXPECT_TRUE(all_finite(lse)) << "lse has unwritten or NaN elements";
      EXPECT_TRUE(all_finite(dq) && all_finite(dk) && all_finite(dv)) << "gradients have unwritten or NaN elements";
      expect_close("out", out, want.out, 1e-2, 3e-2);
      expect_close("dq", dq, want.dq, 2e-2, 5e-2);
      expect_close("dk", dk, want.dk, 2e-2, 5e-2);
      expect_close("dv", dv, want.dv, 2e-2, 5e-2);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, DocumentMaskKernelTest,
                         ::testing::Values(KernelCase{2, 700, 8, 2, 64, 16, 8, true},     // group of 4
                                           KernelCase{1, 777, 4, 4, 128, 32, 6, true},    // group of 1, D 128
                                           KernelCase{2, 600, 4, 2, 64, 64, 4, false},    // head, block 64
                                           KernelCase{1, 500, 16, 1, 64, 16, 16, true},   // group of 16
                                           KernelCase{1, 640, 16, 1, 128, 128, 3, false}),  // head, block 128
                         [](const auto& info) { return info.param.name(); });

using AttentionFn = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>;

// `attend` on the CUDA inputs against `reference` on float32 CPU copies: the output and the
// gradients of q, k and v for in.grad_out.
void expect_matches_reference(const Inputs& in, const AttentionFn& attend, const AttentionFn& reference) {
  auto q = in.q.clone().requires_grad_(true), k = in.k.clone().requires_grad_(true),
       v = in.v.clone().requires_grad_(true);
  auto qr = in.q.cpu().to(torch::kFloat32).requires_grad_(true),
       kr = in.k.cpu().to(torch::kFloat32).requires_grad_(true),
       vr = in.v.cpu().to(torch::kFloat32).requires_grad_(true);
  const auto out = attend(q, k, v);
  const auto want = reference(qr, kr, vr);
  out.backward(in.grad_out);
  want.backward(in.grad_out.cpu().to(torch::kFloat32));
  expect_close("out", out.detach(), want.detach(), 1e-2, 3e-2);
  expect_close("dq", q.grad(), qr.grad(), 2e-2, 5e-2);
  expect_close("dk", k.grad(), kr.grad(), 2e-2, 5e-2);
  expect_close("dv", v.grad(), vr.grad(), 2e-2, 5e-2);
}

// The autograd binding of the block-sparse kernels against the reference path.
TEST(DocumentMaskCuda, SparseAutogradMatchesTheReference) {
  SSA_REQUIRE_CUDA();
  const KernelCase c{2, 900, 8, 2, 64, 16, 8, true};
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const Inputs in = random_inputs(c, seed);
  const auto starts = random_document_starts(c, seed);
  const auto starts_cuda = starts.to(torch::kCUDA);
  const auto selection = attention::select_blocks_cuda(in.q, in.k, c.spec(), starts_cuda);
  expect_matches_reference(
      in,
      [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
        return attention::sparse_attention(q, k, v, c.spec(), attention::Backend::kCuda, 128, {}, starts_cuda);
      },
      [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
        return attention::sparse_attention_reference(q, k, v, c.spec(), 128, selection.cpu(), starts);
      });
}

// Full attention with documents on CUDA (FlashAttention's varlen kernel; rows of one document each:
// cuDNN) against the reference path, for both head dims and 1 to 8 query heads per KV head.
TEST(DocumentMaskCuda, FusedFullAttentionMatchesTheReference) {
  SSA_REQUIRE_CUDA();
  for (const KernelCase& c : {KernelCase{1, 1500, 16, 2, 128, 16, 8, true}, KernelCase{3, 333, 4, 4, 64, 16, 8, true},
                              KernelCase{2, 700, 8, 1, 64, 16, 8, true}, KernelCase{2, 900, 8, 2, 64, 16, 8, true}}) {
    for (const bool one_document_per_row : {false, true}) {
      const uint64_t seed = fresh_seed();
      SCOPED_TRACE(c.name() + (one_document_per_row ? ", one document per row" : ", documents") + ", seed " +
                   std::to_string(seed));
      const Inputs in = random_inputs(c, seed);
      const auto starts = one_document_per_row ? torch::zeros({c.batch, c.length}, torch::kInt32)
                                               : random_document_starts(c, seed);
      const auto starts_cuda = starts.to(torch::kCUDA);
      const auto spans = attention::document_spans(starts_cuda);
      EXPECT_EQ(spans.documents() == c.batch, one_document_per_row);
      attention::KeptAttention kept;  // records which fused op ran
      expect_matches_reference(
          in,
          [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
            return attention::full_attention(q, k, v, attention::Backend::kAuto, 128, starts_cuda, spans, &kept);
          },
          [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
            return attention::full_attention_reference(q, k, v, 128, starts);
          });
      if (one_document_per_row) {
        EXPECT_TRUE(kept.op == "cudnn" || kept.op == "flash") << kept.op;
      } else {
        EXPECT_EQ(kept.op, "flash") << "FlashAttention's varlen kernel";
      }
    }
  }
}

// A packed row on CUDA gives its documents' outputs and gradients run alone (documents start at
// block boundaries, so the row's blocks are the documents' blocks).
TEST(DocumentMaskCuda, PackedRowEqualsTheDocumentsAlone) {
  SSA_REQUIRE_CUDA();
  const std::vector<int64_t> documents = {256, 144, 100};
  const KernelCase c{1, 500, 8, 2, 64, 16, 4, true};
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const Inputs in = random_inputs(c, seed);
  std::vector<torch::Tensor> pieces;
  for (int64_t length : documents) pieces.push_back(torch::arange(length, torch::kInt64));
  const auto starts = attention::document_starts(torch::cat(pieces).unsqueeze(0)).to(torch::kCUDA);
  for (const bool sparse : {true, false}) {
    SCOPED_TRACE(sparse ? "sparse" : "full");
    auto attend = [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                      const torch::Tensor& document_starts) {
      return sparse ? attention::sparse_attention(q, k, v, c.spec(), attention::Backend::kCuda, 128, {},
                                                  document_starts)
                    : attention::full_attention(q, k, v, attention::Backend::kAuto, 128, document_starts);
    };
    auto q = in.q.clone().requires_grad_(true), k = in.k.clone().requires_grad_(true),
         v = in.v.clone().requires_grad_(true);
    attend(q, k, v, starts).backward(in.grad_out);
    const auto packed = attend(in.q, in.k, in.v, starts);
    int64_t offset = 0;
    for (int64_t length : documents) {
      auto piece = [&](const torch::Tensor& x) { return x.narrow(1, offset, length); };
      auto qd = piece(in.q).clone().requires_grad_(true), kd = piece(in.k).clone().requires_grad_(true),
           vd = piece(in.v).clone().requires_grad_(true);
      const auto alone = attend(qd, kd, vd, {});
      alone.backward(piece(in.grad_out));
      SCOPED_TRACE("document at " + std::to_string(offset));
      expect_close("out", piece(packed), alone.detach(), 1e-2, 3e-2);
      expect_close("dq", piece(q.grad()), qd.grad(), 2e-2, 5e-2);
      expect_close("dk", piece(k.grad()), kd.grad(), 2e-2, 5e-2);
      expect_close("dv", piece(v.grad()), vd.grad(), 2e-2, 5e-2);
      offset += length;
    }
  }
}

}  // namespace
}  // namespace ssa::test
