#include <gtest/gtest.h>

#include <set>

#include "attention/reference_math.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

struct Shape {
  int64_t batch, length, q_heads, kv_heads, head_dim, block_size, topk;
};

SparseSpec spec_of(const Shape& s, Selection selection) { return {s.block_size, s.topk, selection}; }

TEST(BlockSelection, MatchesTheDefinitionIncludingOrder) {
  torch::manual_seed(11);
  const std::vector<Shape> shapes = {
      {2, 45, 4, 4, 8, 4, 4},   // group size 1, T not a multiple of Bs
      {2, 38, 4, 2, 8, 3, 5},   // group size 2
      {2, 61, 8, 2, 6, 5, 3},   // group size 4
      {2, 50, 8, 1, 8, 4, 6},   // group size 8
      {1, 33, 16, 1, 4, 2, 20}, // group size 16, budget larger than the number of blocks
      {2, 7, 4, 2, 8, 16, 4},   // a single incomplete block
  };
  for (const auto& s : shapes) {
    auto q = torch::randn({s.batch, s.length, s.q_heads, s.head_dim}, torch::kFloat64);
    auto k = torch::randn({s.batch, s.length, s.kv_heads, s.head_dim}, torch::kFloat64);
    for (auto variant : {Selection::kGroup, Selection::kHead}) {
      const bool group = variant == Selection::kGroup;
      auto expected = test::brute_force_selection(q, k, s.block_size, s.topk, group);
      for (int64_t chunk : {int64_t{5}, s.block_size, int64_t{1000}}) {
        auto actual = select_blocks(q, k, spec_of(s, variant), chunk);
        ASSERT_EQ(actual.scalar_type(), torch::kInt32);
        ASSERT_EQ(actual.sizes(), expected.sizes()) << "T=" << s.length << " group=" << group;
        EXPECT_TRUE(torch::equal(actual, expected))
            << "T=" << s.length << " Hq=" << s.q_heads << " Hkv=" << s.kv_heads << " group=" << group
            << " chunk=" << chunk;
      }
    }
  }
}

TEST(BlockSelection, StructureCurrentBlockFirstNoFutureBlocksPadding) {
  torch::manual_seed(12);
  const int64_t T = 70, Bs = 8, topk = 4;
  auto q = torch::randn({1, T, 4, 8});
  auto k = torch::randn({1, T, 2, 8});
  auto selection = select_blocks(q, k, {Bs, topk, Selection::kGroup}, 16);
  ASSERT_EQ(selection.sizes(), (std::vector<int64_t>{1, T, 2, topk}));
  EXPECT_FALSE(selection.requires_grad());
  auto sa = selection.accessor<int32_t, 4>();
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < 2; ++h) {
      const int64_t c = t / Bs;
      EXPECT_EQ(sa[0][t][h][0], c);
      const int64_t past = std::min<int64_t>(c, topk - 1);
      std::set<int32_t> seen;
      for (int64_t e = 1; e < topk; ++e) {
        if (e <= past) {
          EXPECT_GE(sa[0][t][h][e], 0);
          EXPECT_LT(sa[0][t][h][e], c);
          EXPECT_TRUE(seen.insert(sa[0][t][h][e]).second) << "duplicate block";
        } else {
          EXPECT_EQ(sa[0][t][h][e], -1);
        }
      }
    }
  }
  // K is the number of blocks when the budget exceeds it.
  EXPECT_EQ(select_blocks(q.narrow(1, 0, 17), k.narrow(1, 0, 17), {Bs, 16, Selection::kHead}, 512).size(3), 3);
}

TEST(BlockSelection, LowPrecisionInputsScoreInFloat32) {
  torch::manual_seed(13);
  auto q = torch::randn({2, 40, 4, 16}).to(torch::kBFloat16);
  auto k = torch::randn({2, 40, 2, 16}).to(torch::kBFloat16);
  for (auto variant : {Selection::kGroup, Selection::kHead}) {
    SparseSpec spec{4, 3, variant};
    EXPECT_TRUE(torch::equal(select_blocks(q, k, spec, 7),
                             select_blocks(q.to(torch::kFloat32), k.to(torch::kFloat32), spec, 7)));
  }
}

TEST(BlockSelection, RejectsBadShapesAndSpecs) {
  auto q = torch::randn({1, 8, 3, 4});
  auto k = torch::randn({1, 8, 2, 4});
  EXPECT_THROW(select_blocks(q, k, {4, 2, Selection::kGroup}, 4), UsageError);
  auto q4 = torch::randn({1, 8, 4, 4});
  EXPECT_THROW(select_blocks(q4, k, {0, 2, Selection::kGroup}, 4), UsageError);
  EXPECT_THROW(select_blocks(q4, k, {4, 0, Selection::kGroup}, 4), UsageError);
  EXPECT_THROW(select_blocks(q4, k, {4, 2, Selection::kGroup}, 0), UsageError);
}

}  // namespace
}  // namespace ssa::attention
