// Document masking on the reference path: a packed row of documents attends exactly as the
// documents run one by one (outputs and gradients), for full and sparse attention, block
// selection and the attention statistics; and nothing crosses a boundary that is not
// block-aligned.
#include <gtest/gtest.h>

#include <functional>

#include "attention/reference_math.h"
#include "ssa/attention/attention_statistics.h"
#include "ssa/attention/document_mask.h"
#include "ssa/attention/full_attention.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

constexpr int64_t kBlock = 4;

// Document lengths of the rows of a packed batch. Aligned: every document but a row's last one
// fills whole blocks of kBlock, so the blocks of the row are the blocks of its documents.
const std::vector<std::vector<int64_t>> kAlignedRows = {{16, 20, 9}, {28, 17}};
const std::vector<std::vector<int64_t>> kUnalignedRows = {{6, 13, 10}, {3, 26}};

int64_t row_length(const std::vector<std::vector<int64_t>>& rows) {
  int64_t total = 0;
  for (int64_t length : rows.front()) total += length;
  return total;
}

// Position ids restarting at every document, int64 [rows, T].
torch::Tensor positions_of(const std::vector<std::vector<int64_t>>& rows) {
  std::vector<torch::Tensor> out;
  for (const auto& row : rows) {
    std::vector<torch::Tensor> pieces;
    for (int64_t length : row) pieces.push_back(torch::arange(length, torch::kInt64));
    out.push_back(torch::cat(pieces));
  }
  return torch::stack(out);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

using Attention = std::function<torch::Tensor(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                              const torch::Tensor& starts)>;

// Runs `attend` on the packed rows (document masking) and on every document alone (no mask) and
// expects the same outputs and the same gradients of q, k and v.
void expect_packed_equals_separate(const Attention& attend, const std::vector<std::vector<int64_t>>& rows, int64_t Hq,
                                   int64_t Hkv, uint64_t seed) {
  torch::manual_seed(seed);
  const int64_t B = static_cast<int64_t>(rows.size()), T = row_length(rows), D = 8;
  auto q = torch::randn({B, T, Hq, D}, torch::kFloat64).requires_grad_(true);
  auto k = torch::randn({B, T, Hkv, D}, torch::kFloat64).requires_grad_(true);
  auto v = torch::randn({B, T, Hkv, D}, torch::kFloat64).requires_grad_(true);
  const auto weight = torch::randn({B, T, Hq, D}, torch::kFloat64);
  const auto starts = document_starts(positions_of(rows));
  const auto packed = attend(q, k, v, starts);
  const auto packed_grads = torch::autograd::grad({(packed * weight).sum()}, {q, k, v});
  for (int64_t b = 0; b < B; ++b) {
    int64_t offset = 0;
    for (int64_t length : rows[b]) {
      auto piece = [&](const torch::Tensor& x) { return x.detach().narrow(0, b, 1).narrow(1, offset, length); };
      auto qd = piece(q).clone().requires_grad_(true);
      auto kd = piece(k).clone().requires_grad_(true);
      auto vd = piece(v).clone().requires_grad_(true);
      const auto alone = attend(qd, kd, vd, {});
      EXPECT_LT(max_abs_diff(piece(packed), alone), 1e-12) << "row " << b << " document at " << offset;
      const auto grads = torch::autograd::grad({(alone * piece(weight)).sum()}, {qd, kd, vd});
      for (size_t n = 0; n < 3; ++n) {
        EXPECT_LT(max_abs_diff(piece(packed_grads[n]), grads[n]), 1e-12)
            << "gradient " << n << " row " << b << " document at " << offset;
      }
      offset += length;
    }
  }
}

TEST(DocumentMask, StartsFollowThePositionIds) {
  const auto positions = torch::tensor({0, 1, 2, 0, 1, 0, 1, 2, 3, 0}, torch::kInt64).view({1, 10});
  const auto expected = torch::tensor({0, 0, 0, 3, 3, 5, 5, 5, 5, 9}, torch::kInt32).view({1, 10});
  EXPECT_TRUE(torch::equal(document_starts(positions), expected));
  // A row that begins inside a document (contiguous packing, evaluation windows) starts it at 0.
  const auto mid = torch::tensor({{7, 8, 9, 0, 1}, {0, 1, 2, 3, 4}}, torch::kInt64);
  EXPECT_TRUE(torch::equal(document_starts(mid), torch::tensor({{0, 0, 0, 3, 3}, {0, 0, 0, 0, 0}}, torch::kInt32)));
}

// The spans varlen kernels take: each document's first token in the flattened rows, then B * T,
// and the longest document (across rows, a row's last document ending at the row's end).
TEST(DocumentMask, SpansListTheDocumentsOfTheFlattenedRows) {
  const auto starts = document_starts(torch::tensor({{0, 1, 2, 0, 1, 0, 1, 2, 3, 0}, {7, 8, 9, 0, 1, 2, 3, 4, 5, 6}},
                                                    torch::kInt64));
  const DocumentSpans spans = document_spans(starts);
  EXPECT_TRUE(torch::equal(spans.offsets, torch::tensor({0, 3, 5, 9, 10, 13, 20}, torch::kInt32)));
  EXPECT_EQ(spans.documents(), 6);
  EXPECT_EQ(spans.longest, 7);
  EXPECT_EQ(spans.tokens, 20);
  EXPECT_EQ(document_spans(torch::zeros({3, 5}, torch::kInt32)).documents(), 3);
  EXPECT_FALSE(cuda_document_spans(starts).offsets.defined()) << "CPU starts need no spans";
  EXPECT_THROW(document_spans(torch::zeros({5}, torch::kInt32)), UsageError);
  // Starts that are not documents: a row that does not start at 0, a start in the future, a
  // token that starts where no earlier token does.
  for (const auto& bad : {torch::tensor({{1, 1, 1}}, torch::kInt32), torch::tensor({{0, 2, 2}}, torch::kInt32),
                          torch::tensor({{0, 1, 0}}, torch::kInt32)}) {
    EXPECT_THROW(document_spans(bad), UsageError) << bad;
  }
}

TEST(DocumentMask, FullAttentionOfAPackedRowEqualsTheDocumentsAlone) {
  const Attention full = [](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& starts) { return full_attention(q, k, v, Backend::kAuto, 7, starts); };
  for (const auto& rows : {kAlignedRows, kUnalignedRows}) {
    expect_packed_equals_separate(full, rows, 4, 2, 31);
    expect_packed_equals_separate(full, rows, 2, 2, 32);
  }
}

TEST(DocumentMask, SparseAttentionOfAPackedRowEqualsTheDocumentsAlone) {
  for (auto variant : {Selection::kGroup, Selection::kHead}) {
    const SparseSpec spec{kBlock, 3, variant};
    const Attention sparse = [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& starts) {
      return sparse_attention(q, k, v, spec, Backend::kAuto, 7, {}, starts);
    };
    expect_packed_equals_separate(sparse, kAlignedRows, 4, 2, 33);
    expect_packed_equals_separate(sparse, kAlignedRows, 4, 1, 34);
  }
}

TEST(DocumentMask, BlockSelectionOfAPackedRowEqualsTheDocumentsAlone) {
  torch::manual_seed(35);
  const auto& rows = kAlignedRows;
  const int64_t B = 2, T = row_length(rows), Hq = 4, Hkv = 2, D = 8;
  const auto q = torch::randn({B, T, Hq, D}, torch::kFloat64);
  const auto k = torch::randn({B, T, Hkv, D}, torch::kFloat64);
  const auto starts = document_starts(positions_of(rows));
  for (auto variant : {Selection::kGroup, Selection::kHead}) {
    const SparseSpec spec{kBlock, 3, variant};
    const auto packed = select_blocks(q, k, spec, 5, starts);
    int64_t checked = 0;
    for (int64_t b = 0; b < B; ++b) {
      int64_t offset = 0;
      for (int64_t length : rows[b]) {
        const auto alone = select_blocks(q.narrow(0, b, 1).narrow(1, offset, length),
                                         k.narrow(0, b, 1).narrow(1, offset, length), spec, 5);
        const int64_t first_block = offset / kBlock;
        for (int64_t t = 0; t < length; ++t) {
          for (int64_t h = 0; h < alone.size(2); ++h) {
            std::vector<int64_t> expected, actual;
            for (int64_t e = 0; e < alone.size(3); ++e) {
              if (const int64_t j = alone[0][t][h][e].item<int64_t>(); j >= 0) expected.push_back(j + first_block);
            }
            for (int64_t e = 0; e < packed.size(3); ++e) {
              if (const int64_t j = packed[b][offset + t][h][e].item<int64_t>(); j >= 0) actual.push_back(j);
            }
            EXPECT_EQ(actual, expected) << "row " << b << " token " << offset + t << " head " << h;
            ++checked;
          }
        }
        offset += length;
      }
    }
    EXPECT_EQ(checked, B * T * packed.size(2));
  }
}

// Boundaries inside a block: a block partly inside the document may be selected, its tokens of
// the previous document are masked, and no block wholly before the document is selected.
TEST(DocumentMask, NothingCrossesABoundaryInsideABlock) {
  torch::manual_seed(36);
  const auto& rows = kUnalignedRows;
  const int64_t B = 2, T = row_length(rows), Hq = 4, Hkv = 2, D = 8;
  const auto starts = document_starts(positions_of(rows));
  for (auto variant : {Selection::kGroup, Selection::kHead}) {
    const SparseSpec spec{kBlock, 3, variant};
    auto q = torch::randn({B, T, Hq, D}, torch::kFloat64).requires_grad_(true);
    auto k = torch::randn({B, T, Hkv, D}, torch::kFloat64).requires_grad_(true);
    auto v = torch::randn({B, T, Hkv, D}, torch::kFloat64).requires_grad_(true);
    const auto selection = select_blocks(q, k, spec, 6, starts);
    const auto sa = selection.accessor<int32_t, 4>();
    const auto sta = starts.accessor<int32_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t h = 0; h < selection.size(2); ++h) {
          EXPECT_EQ(sa[b][t][h][0], t / kBlock);
          for (int64_t e = 1; e < selection.size(3); ++e) {
            if (sa[b][t][h][e] >= 0) {
              EXPECT_GE(sa[b][t][h][e], sta[b][t] / kBlock) << "row " << b << " token " << t;
            }
          }
        }
      }
    }
    // The attention is that of the definition over the selected tokens of the document.
    const auto out = sparse_attention_reference(q, k, v, spec, 6, selection, starts);
    const auto expected = test::brute_force_attention(q, k, v, [&](int64_t b, int64_t t, int64_t i) {
      std::vector<int64_t> tokens;
      for (int64_t u : test::selected_tokens(selection, kBlock, Hq, b, t, i)) {
        if (u >= sta[b][t]) tokens.push_back(u);
      }
      return tokens;
    });
    EXPECT_LT(max_abs_diff(out, expected), 1e-12);
    // The outputs of one document have no gradient outside it.
    int64_t offset = 0;
    for (int64_t length : rows[1]) {
      const auto grads = torch::autograd::grad({out.narrow(0, 1, 1).narrow(1, offset, length).sum()}, {q, k, v},
                                               {}, /*retain_graph=*/true);
      for (size_t n = 0; n < 3; ++n) {
        auto outside = grads[n].narrow(0, 1, 1).clone();
        outside.narrow(1, offset, length).zero_();
        EXPECT_EQ(outside.abs().max().item<double>(), 0.0) << "gradient " << n << " document at " << offset;
        EXPECT_GT(grads[n].narrow(0, 1, 1).narrow(1, offset, length).abs().max().item<double>(), 0.0);
      }
      offset += length;
    }
  }
}

TEST(DocumentMask, AttentionStatisticsOfAPackedRowEqualTheDocumentsAlone) {
  torch::manual_seed(37);
  const auto& rows = kAlignedRows;
  const int64_t B = 2, T = row_length(rows), Hq = 4, Hkv = 2, D = 8;
  const auto q = torch::randn({B, T, Hq, D}, torch::kFloat64);
  const auto k = torch::randn({B, T, Hkv, D}, torch::kFloat64);
  const auto v = torch::randn({B, T, Hkv, D}, torch::kFloat64);
  const SparseSpec spec{kBlock, 3, Selection::kGroup};
  const auto packed = attention_statistics(q, k, v, spec, 9, {}, document_starts(positions_of(rows)));
  for (int64_t b = 0; b < B; ++b) {
    int64_t offset = 0;
    for (int64_t length : rows[b]) {
      auto piece = [&](const torch::Tensor& x) { return x.narrow(0, b, 1).narrow(1, offset, length); };
      const auto alone = attention_statistics(piece(q), piece(k), piece(v), spec, 9);
      EXPECT_LT(max_abs_diff(piece(packed.sparsity), alone.sparsity), 1e-12);
      EXPECT_LT(max_abs_diff(piece(packed.entropy), alone.entropy), 1e-12);
      EXPECT_LT(max_abs_diff(piece(packed.kl), alone.kl), 1e-12);
      EXPECT_LT(max_abs_diff(piece(packed.output_error), alone.output_error), 1e-12);
      EXPECT_LT(max_abs_diff(piece(packed.error_bound), alone.error_bound), 1e-12);
      offset += length;
    }
  }
  // Masking changes what the documents after the first see.
  const auto unmasked = attention_statistics(q, k, v, spec, 9);
  EXPECT_GT(max_abs_diff(unmasked.entropy, packed.entropy), 1e-3);
}

TEST(DocumentMask, MalformedStartsAreUsageErrors) {
  const auto q = torch::randn({1, 8, 2, 4});
  const auto k = torch::randn({1, 8, 2, 4});
  EXPECT_THROW(full_attention(q, k, k, Backend::kAuto, 4, torch::zeros({1, 8}, torch::kInt64)), UsageError);
  EXPECT_THROW(select_blocks(q, k, {4, 2, Selection::kGroup}, 4, torch::zeros({1, 7}, torch::kInt32)), UsageError);
  EXPECT_THROW(document_starts(torch::zeros({8}, torch::kInt64)), UsageError);
}

}  // namespace
}  // namespace ssa::attention
