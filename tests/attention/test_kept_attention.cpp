// take_or_run (attention/kept_attention.h): the first run keeps, the second takes and empties,
// results another op kept are dropped without keeping anew, and nothing is kept without a slot.
#include <gtest/gtest.h>

#include "ssa/attention/kept_attention.h"

namespace ssa::attention {
namespace {

TEST(KeptAttention, TheFirstRunKeepsAndTheSecondTakes) {
  int runs = 0;
  auto run = [&] {
    ++runs;
    return std::vector<torch::Tensor>{torch::full({2}, static_cast<double>(runs)), torch::ones({1})};
  };
  KeptAttention kept;
  const auto first = take_or_run(&kept, "op", run);
  EXPECT_EQ(runs, 1);
  ASSERT_EQ(kept.tensors.size(), 2u);
  EXPECT_EQ(kept.op, "op");
  EXPECT_TRUE(kept.tensors[0].is_same(first[0]));

  const auto second = take_or_run(&kept, "op", run);
  EXPECT_EQ(runs, 1) << "the second run takes what the first kept";
  EXPECT_TRUE(second[0].is_same(first[0]));
  EXPECT_TRUE(kept.tensors.empty());

  const auto third = take_or_run(&kept, "op", run);
  EXPECT_EQ(runs, 2) << "an empty slot runs again";
  EXPECT_EQ(third[0][0].item<double>(), 2.0);

  ASSERT_FALSE(kept.tensors.empty());
  const auto other = take_or_run(&kept, "other op", run);
  EXPECT_EQ(runs, 3) << "another op's results are dropped";
  EXPECT_EQ(other[0][0].item<double>(), 3.0);
  EXPECT_TRUE(kept.tensors.empty()) << "and the op that ran instead keeps nothing";

  EXPECT_EQ(take_or_run(nullptr, "op", run)[0][0].item<double>(), 4.0);
  EXPECT_EQ(take_or_run(nullptr, "op", run)[0][0].item<double>(), 5.0) << "no slot: every call runs";
}

}  // namespace
}  // namespace ssa::attention
