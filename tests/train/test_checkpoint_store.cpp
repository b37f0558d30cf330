#include <gtest/gtest.h>

#include "ssa/io/atomic_file.h"
#include "ssa/train/checkpoint_store.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"

namespace ssa::train {
namespace {

namespace fs = std::filesystem;

CheckpointContents contents(int64_t step) {
  CheckpointContents c;
  c.model.hidden_size = 8;
  c.model.intermediate_size = 16;
  c.model.num_layers = 1;
  c.model.num_heads = 2;
  c.model.num_kv_heads = 1;
  c.model.head_dim = 4;
  c.model.vocab_size = 16;
  c.model.bos_token_id = 0;
  c.model.eos_token_id = 1;
  c.weights = {{"w", torch::full({2}, static_cast<float>(step))}};
  c.optimizer = {{"exp_avg.w", torch::zeros({2})}, {"exp_avg_sq.w", torch::zeros({2})}};
  c.state.step = step;
  c.state.optimizer_updates = step;
  return c;
}

TEST(CheckpointStore, SavesReadsAndPointsLatest) {
  test::TempDir dir;
  CheckpointStore store(dir.path());
  EXPECT_FALSE(store.latest());
  store.save(contents(3));
  const auto folder = store.save(contents(5));
  EXPECT_EQ(folder, dir / "checkpoints" / "step-00000005");
  EXPECT_EQ(*store.latest(), folder);
  const auto loaded = read_checkpoint(folder);
  EXPECT_EQ(loaded.state.step, 5);
  EXPECT_TRUE(torch::equal(loaded.weights.at("w"), torch::full({2}, 5.0f)));
  EXPECT_EQ(loaded.model_config.model.hidden_size, 8);
  EXPECT_EQ(store.complete_steps(), (std::vector<int64_t>{3, 5}));
}

TEST(CheckpointStore, PruneKeepsTheNewestAndTheMilestones) {
  test::TempDir dir;
  CheckpointStore store(dir.path());
  for (int64_t step : {10, 20, 30, 40, 50, 60}) store.save(contents(step));
  const auto removed = store.prune(2, 20);
  EXPECT_EQ(store.complete_steps(), (std::vector<int64_t>{20, 40, 50, 60}));
  EXPECT_EQ(removed.size(), 2u);
  store.prune(0, 0);  // the newest survives any policy
  EXPECT_EQ(store.complete_steps(), (std::vector<int64_t>{60}));
}

TEST(CheckpointStore, IncompleteCheckpointsAreNeverLoaded) {
  test::TempDir dir;
  CheckpointStore store(dir.path());
  const auto good = store.save(contents(1));
  const auto partial = store.save(contents(2));
  fs::remove(partial / kDoneFile);
  EXPECT_EQ(store.complete_steps(), (std::vector<int64_t>{1}));
  EXPECT_THROW(read_checkpoint(partial), UsageError);
  EXPECT_THROW(store.latest(), UsageError);  // `latest` names the partial one
  EXPECT_EQ(*resolve_resume(good.string(), dir.path()), good);
  fs::remove(store.folder() / kLatestFile);
  EXPECT_EQ(*store.latest(), good);  // without a pointer: the newest complete one
  EXPECT_EQ(*resolve_resume(dir.path().string(), dir / "elsewhere"), good);
}

TEST(CheckpointStore, StaleStagingFoldersAreRemoved) {
  test::TempDir dir;
  CheckpointStore store(dir.path());
  store.save(contents(1));
  fs::create_directories(store.folder() / "step-00000002.tmp");
  fs::create_directories(store.folder() / "notes.tmp");
  store.remove_stale_staging();
  EXPECT_FALSE(fs::exists(store.folder() / "step-00000002.tmp"));
  EXPECT_TRUE(fs::exists(store.folder() / "notes.tmp"));  // not ours
}

TEST(CheckpointStore, DamagedStateIsAFormatError) {
  test::TempDir dir;
  CheckpointStore store(dir.path());
  const auto folder = store.save(contents(4));
  io::write_file_atomic(folder / kTrainerStateFile, "{\"format\": 1, \"step\": ");
  EXPECT_THROW(read_checkpoint(folder), FormatError);
  io::write_file_atomic(folder / kTrainerStateFile, "{\"format\": 1}");
  EXPECT_THROW(read_checkpoint(folder), FormatError);
  fs::remove(folder / kOptimizerFile);
  EXPECT_THROW(read_checkpoint(folder), FormatError);
}

TEST(CheckpointStore, ResumeValuesThatNameNothing) {
  test::TempDir dir;
  EXPECT_FALSE(resolve_resume("auto", dir.path()));  // nothing yet: a fresh start
  EXPECT_THROW(resolve_resume((dir / "missing").string(), dir.path()), UsageError);
  fs::create_directories(dir / "empty");
  EXPECT_THROW(resolve_resume((dir / "empty").string(), dir.path()), UsageError);
}

}  // namespace
}  // namespace ssa::train
