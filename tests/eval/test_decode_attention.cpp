#include <gtest/gtest.h>

#include "ssa/attention/decode_attention.h"
#include "ssa/attention/full_attention.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

struct Case {
  Selection selection;
  int64_t heads, kv_heads;
};

// Queries at offsets of a sequence whose keys cross several blocks: the selection and the output
// of the new rows equal the whole-sequence functions' rows.
TEST(DecodeAttention, EqualsTheWholeSequenceRowsForEveryOffset) {
  torch::manual_seed(5);
  const int64_t B = 2, T = 75, D = 8;
  for (const Case& c : {Case{Selection::kGroup, 4, 2}, Case{Selection::kHead, 4, 2}, Case{Selection::kGroup, 2, 1},
                        Case{Selection::kHead, 3, 3}}) {
    SparseSpec spec;
    spec.block_size = 8;
    spec.topk = 3;
    spec.selection = c.selection;
    auto q = torch::randn({B, T, c.heads, D}, torch::kFloat64) * 2;
    auto k = torch::randn({B, T, c.kv_heads, D}, torch::kFloat64) * 2;
    auto v = torch::randn({B, T, c.kv_heads, D}, torch::kFloat64);
    // Prefixes of every length: the cache holds `end` tokens, the last n of them are new.
    for (int64_t end : {1, 7, 8, 9, 16, 17, 24, 25, 33, 47, 64, 75}) {
      for (int64_t n : {int64_t{1}, std::min<int64_t>(end, 5)}) {
        const int64_t offset = end - n;
        auto qp = q.narrow(1, 0, end), kp = k.narrow(1, 0, end), vp = v.narrow(1, 0, end);
        auto expected_selection = select_blocks(qp, kp, spec, 16).narrow(1, offset, n);
        auto selection = select_blocks_at(q.narrow(1, offset, n), kp, offset, spec, 2);
        ASSERT_TRUE(torch::equal(selection, expected_selection)) << "end " << end << " n " << n;
        auto expected_sparse = sparse_attention_reference(qp, kp, vp, spec, 16, {}).narrow(1, offset, n);
        auto sparse = sparse_attention_at(q.narrow(1, offset, n), kp, vp, offset, spec, 2);
        EXPECT_TRUE(torch::allclose(sparse, expected_sparse, 1e-10, 1e-12)) << "end " << end;
        auto expected_full = full_attention_reference(qp, kp, vp, 16).narrow(1, offset, n);
        auto full = full_attention_at(q.narrow(1, offset, n), kp, vp, offset, 3);
        EXPECT_TRUE(torch::allclose(full, expected_full, 1e-10, 1e-12)) << "end " << end;
      }
    }
  }
}

TEST(DecodeAttention, SparseDiffersFromFullOnceBlocksAreDropped) {
  torch::manual_seed(6);
  SparseSpec spec;
  spec.block_size = 4;
  spec.topk = 2;
  auto q = torch::randn({1, 1, 2, 8}, torch::kFloat64) * 3;
  auto k = torch::randn({1, 40, 2, 8}, torch::kFloat64) * 3;
  auto v = torch::randn({1, 40, 2, 8}, torch::kFloat64);
  auto selection = select_blocks_at(q, k, 39, spec, 16);
  EXPECT_EQ(selection.sizes().vec(), (std::vector<int64_t>{1, 1, 2, 2}));
  EXPECT_EQ(selection[0][0][0][0].item<int>(), 9);  // the current block comes first
  EXPECT_FALSE(torch::allclose(sparse_attention_at(q, k, v, 39, spec, 16), full_attention_at(q, k, v, 39, 16)));
  EXPECT_THROW(full_attention_at(q, k, v, 38, 16), UsageError);
}

}  // namespace
}  // namespace ssa::attention
