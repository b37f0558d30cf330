// Bucket assignment and the shards of the ranks.
#include <gtest/gtest.h>

#include "ssa/dist/bucket_layout.h"

namespace ssa::dist {
namespace {

TEST(BucketLayout, FillsBucketsFromTheLastParameterBackwards) {
  const auto layout = assign_buckets({10, 20, 5, 30, 8}, 30, 4);
  ASSERT_EQ(layout.buckets.size(), 4u);
  EXPECT_EQ(layout.buckets[0].parameters, (std::vector<size_t>{4}));  // 8 + 30 > 30
  EXPECT_EQ(layout.buckets[1].parameters, (std::vector<size_t>{3}));
  EXPECT_EQ(layout.buckets[2].parameters, (std::vector<size_t>{2, 1}));
  EXPECT_EQ(layout.buckets[3].parameters, (std::vector<size_t>{0}));
  EXPECT_EQ(layout.buckets[2].elements, 25);
  EXPECT_EQ(layout.buckets[2].padded, 28);  // a multiple of the 4 ranks
  EXPECT_EQ(layout.chunk(2), 7);
  EXPECT_EQ(layout.slots[1].bucket, 2u);
  EXPECT_EQ(layout.slots[1].offset, 5);
  EXPECT_EQ(layout.slots[2].offset, 0);
}

TEST(BucketLayout, AParameterLargerThanABucketGetsItsOwn) {
  const auto layout = assign_buckets({3, 100, 3}, 10, 1);
  ASSERT_EQ(layout.buckets.size(), 3u);
  EXPECT_EQ(layout.buckets[1].parameters, (std::vector<size_t>{1}));
  EXPECT_EQ(layout.buckets[1].padded, 100);
}

TEST(BucketLayout, TheRanksShardsCoverEveryElementOnce) {
  const std::vector<int64_t> numels = {7, 1, 33, 12, 5, 64, 3};
  for (int64_t world : {1, 2, 3, 5}) {
    const auto layout = assign_buckets(numels, 40, world);
    std::vector<std::vector<int>> owners;
    for (auto n : numels) owners.emplace_back(static_cast<size_t>(n), 0);
    for (int64_t rank = 0; rank < world; ++rank) {
      for (const auto& piece : shard_pieces(layout, rank)) {
        const auto& slot = layout.slots[piece.parameter];
        EXPECT_EQ(piece.bucket, slot.bucket);
        EXPECT_EQ(piece.bucket_offset, slot.offset + piece.begin);
        // Inside the rank's chunk of the bucket.
        EXPECT_GE(piece.bucket_offset, rank * layout.chunk(piece.bucket));
        EXPECT_LE(piece.bucket_offset + piece.end - piece.begin, (rank + 1) * layout.chunk(piece.bucket));
        for (int64_t e = piece.begin; e < piece.end; ++e) owners[piece.parameter][static_cast<size_t>(e)] += 1;
      }
    }
    for (size_t p = 0; p < owners.size(); ++p) {
      for (size_t e = 0; e < owners[p].size(); ++e) ASSERT_EQ(owners[p][e], 1) << "world " << world << " parameter " << p;
    }
  }
}

TEST(BucketLayout, AParameterSplitAcrossRanksGivesOnePiecePerRank) {
  const auto layout = assign_buckets({10}, 100, 3);  // padded to 12, chunks of 4
  const auto r0 = shard_pieces(layout, 0), r2 = shard_pieces(layout, 2);
  ASSERT_EQ(r0.size(), 1u);
  EXPECT_EQ(r0[0].begin, 0);
  EXPECT_EQ(r0[0].end, 4);
  ASSERT_EQ(r2.size(), 1u);
  EXPECT_EQ(r2[0].begin, 8);
  EXPECT_EQ(r2[0].end, 10);  // the rest of the chunk is padding
}

}  // namespace
}  // namespace ssa::dist
