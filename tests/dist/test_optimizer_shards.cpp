// Sharded optimizer state: written by the ranks of one world size, read back by another.
#include <gtest/gtest.h>

#include "ssa/dist/bucket_layout.h"
#include "ssa/dist/optimizer_shards.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"

namespace ssa::dist {
namespace {

namespace fs = std::filesystem;

// Two parameters with recognisable moments: exp_avg = index, exp_avg_sq = -index.
const model::NamedTensors kParameters = {{"a", torch::zeros({3, 4})}, {"b", torch::zeros({7})}};

torch::Tensor moment(const std::string& name, bool squared) {
  const int64_t n = name == "a" ? 12 : 7;
  auto t = torch::arange(n, torch::kFloat32) + (name == "a" ? 0 : 100);
  return squared ? -t : t;
}

// Writes the shards of `world` ranks as ZeRO would lay them out.
void write_world(const fs::path& folder, int64_t world) {
  const auto layout = assign_buckets({12, 7}, 10, world);
  for (int64_t rank = 0; rank < world; ++rank) {
    std::vector<StatePiece> pieces;
    model::NamedTensors state;
    for (const auto& p : shard_pieces(layout, rank)) {
      const std::string name = kParameters[p.parameter].first;
      pieces.push_back({name, p.begin, p.end, {p.end - p.begin}});
      state.emplace_back("exp_avg." + name, moment(name, false).narrow(0, p.begin, p.end - p.begin));
      state.emplace_back("exp_avg_sq." + name, moment(name, true).narrow(0, p.begin, p.end - p.begin));
    }
    write_optimizer_shard(folder, rank, world, state, pieces, 9);
  }
}

TEST(OptimizerShards, TwoRanksReadBackAsOneProcessAndAsThreeRanks) {
  test::TempDir dir;
  write_world(dir.path(), 2);
  const auto whole = read_optimizer_state(dir.path(), {}, whole_pieces(kParameters));
  ASSERT_EQ(whole.size(), 4u);
  EXPECT_TRUE(torch::equal(whole.at("exp_avg.a"), moment("a", false).reshape({3, 4})));
  EXPECT_TRUE(torch::equal(whole.at("exp_avg_sq.b"), moment("b", true)));

  const auto layout = assign_buckets({12, 7}, 10, 3);
  for (int64_t rank = 0; rank < 3; ++rank) {
    std::vector<StatePiece> pieces;
    for (const auto& p : shard_pieces(layout, rank)) {
      pieces.push_back({kParameters[p.parameter].first, p.begin, p.end, {p.end - p.begin}});
    }
    const auto state = read_optimizer_state(dir.path(), {}, pieces);
    for (const auto& piece : pieces) {
      EXPECT_TRUE(torch::equal(state.at("exp_avg." + piece.name),
                               moment(piece.name, false).narrow(0, piece.begin, piece.end - piece.begin)));
    }
  }
}

TEST(OptimizerShards, AWholeOptimizerFileIsSlicedIntoPieces) {
  const std::map<std::string, torch::Tensor> file = {{"exp_avg.a", moment("a", false).reshape({3, 4})},
                                                     {"exp_avg_sq.a", moment("a", true).reshape({3, 4})}};
  const auto state = read_optimizer_state("unused", file, {{"a", 5, 9, {4}}});
  EXPECT_TRUE(torch::equal(state.at("exp_avg_sq.a"), moment("a", true).narrow(0, 5, 4)));
}

TEST(OptimizerShards, AMissingShardIsNamed) {
  test::TempDir dir;
  write_world(dir.path(), 2);
  fs::remove(dir / optimizer_shard_name(1, 2));
  try {
    read_optimizer_state(dir.path(), {}, whole_pieces(kParameters));
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer-rank-00001-of-00002.safetensors is missing"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ssa::dist
