// `ssa train` as two ranks on localhost (Gloo) against one process with the same global batch:
// the same losses and weights for every ZeRO stage, resume across world sizes, and the faults.
#include <gtest/gtest.h>

#include <csignal>

#include "dist/dist_fixture.h"
#include "ssa/model/tensor_file.h"
#include "ssa/train/checkpoint_store.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"
#include "train/train_fixture.h"

namespace ssa::dist {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

class DataParallelTest : public ::testing::Test {
 protected:
  void SetUp() override { test::write_shards(dir_ / "data", test::copy_task_documents(240, 5, 6, 1)); }

  // Global batch 8 of micro-batches of 2: one process accumulates 4, each of two ranks 2.
  // ssa with p_full = 1 runs both attention streams and the alignment term with the same modes
  // whatever the number of ranks; small buckets make several reductions per backward pass.
  std::vector<std::string> args(const std::string& run, const std::vector<std::string>& extra) {
    auto out = test::tiny_overrides(dir_ / run, dir_ / "data");
    for (const char* o : {"train.global_batch_size=8", "train.steps=4", "checkpoint.every=0", "eval.every=0",
                                 "ssa.method=ssa", "ssa.p_full=1", "log.tensorboard=false", "dist.bucket_mb=0.01",
                                 "dist.timeout_s=20"}) {
      out.push_back(o);
    }
    out.insert(out.end(), extra.begin(), extra.end());
    return out;
  }

  // Runs `world` ranks (1: a plain process without launcher variables) to completion.
  void run(int world, const std::string& run_name, const std::vector<std::string>& extra,
           const std::vector<std::string>& cli = {}) {
    auto a = args(run_name, extra);
    a.insert(a.end(), cli.begin(), cli.end());
    const fs::path log = dir_ / (run_name + "-w" + std::to_string(world));
    std::vector<pid_t> pids;
    if (world == 1) {
      pids.push_back(test::spawn_ssa_train(a, {}, log.string() + "-0.log"));
    } else {
      pids = test::spawn_ranks(world, a, log);
    }
    for (int r = 0; r < world; ++r) {
      const auto code = test::wait_exit(pids[static_cast<size_t>(r)], seconds(120));
      ASSERT_EQ(code, std::optional<int>(0)) << test::read_text(log.string() + "-" + std::to_string(r) + ".log");
    }
  }

  std::vector<double> losses(const std::string& run_name) {
    std::vector<double> out;
    for (const auto& line : test::read_metrics(dir_ / run_name)) out.push_back(line.at("loss").get<double>());
    return out;
  }

  std::map<std::string, torch::Tensor> final_weights(const std::string& run_name) {
    const auto latest = train::CheckpointStore(dir_ / run_name).latest();
    EXPECT_TRUE(latest.has_value());
    return model::read_tensor_file(*latest / "model.safetensors");
  }

  void expect_same_run(const std::string& a, const std::string& b, size_t first_step = 0) {
    const auto la = losses(a), lb = losses(b);
    ASSERT_EQ(la.size(), lb.size());
    for (size_t i = first_step; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-5 * std::abs(la[i])) << "step " << i + 1;
    const auto wa = final_weights(a), wb = final_weights(b);
    ASSERT_EQ(wa.size(), wb.size());
    for (const auto& [name, tensor] : wa) {
      EXPECT_TRUE(torch::allclose(tensor, wb.at(name), 1e-4, 1e-6)) << name;
    }
  }

  test::TempDir dir_;
};

TEST_F(DataParallelTest, TwoRanksMatchOneProcessForEveryZeroStage) {
  run(1, "single", {});
  ASSERT_EQ(losses("single").size(), 4u);
  for (const auto& line : test::read_metrics(dir_ / "single")) EXPECT_TRUE(line.at("comm").is_null());
  for (const std::string zero : {"0", "1", "2"}) {
    SCOPED_TRACE("zero " + zero);
    run(2, "zero" + zero, {"dist.zero=" + zero});
    expect_same_run("single", "zero" + zero);
    // Gloo's collectives block the process: every step waits for some communication.
    for (const auto& line : test::read_metrics(dir_ / ("zero" + zero))) {
      const double comm = line.at("comm").get<double>();
      EXPECT_GT(comm, 0.0);
      EXPECT_LT(comm, 1.0);
    }
  }
  // Every rank wrote its optimizer shard; rank 0 the rest.
  const auto checkpoint = *train::CheckpointStore(dir_ / "zero2").latest();
  EXPECT_TRUE(fs::exists(checkpoint / "optimizer-rank-00000-of-00002.safetensors"));
  EXPECT_TRUE(fs::exists(checkpoint / "optimizer-rank-00001-of-00002.safetensors"));
  EXPECT_FALSE(fs::exists(checkpoint / train::kOptimizerFile));
  EXPECT_TRUE(fs::exists(*train::CheckpointStore(dir_ / "zero0").latest() / train::kOptimizerFile));
}

TEST_F(DataParallelTest, ActivationCheckpointingGivesTheSameResults) {
  // Recomputed layers and the chunked loss reach parameters in nested backward passes: the
  // reducer must still reduce each gradient once, complete.
  run(1, "single", {"train.activation_checkpointing=full"});
  run(2, "checkpointed", {"train.activation_checkpointing=full", "dist.zero=2"});
  expect_same_run("single", "checkpointed");
}

TEST_F(DataParallelTest, Bf16ReductionOnGlooIsAConfigurationError) {
  const auto pids = test::spawn_ranks(2, args("bf16", {"dist.reduce_dtype=bf16"}), dir_ / "bf16");
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(test::wait_exit(pids[static_cast<size_t>(r)], seconds(60)), std::optional<int>(exit_code::kUsage));
  }
  EXPECT_NE(test::read_text(dir_ / "bf16-0.log").find("bf16 needs the nccl backend"), std::string::npos)
      << test::read_text(dir_ / "bf16-0.log");
}

TEST_F(DataParallelTest, ResumeContinuesAcrossWorldSizes) {
  run(1, "reference", {"train.steps=6"});
  // Two ZeRO-1 ranks for 3 steps, then one process to step 6 from their sharded checkpoint.
  run(2, "two-then-one", {"train.steps=3", "dist.zero=1"});
  run(1, "two-then-one", {"train.steps=6"}, {"--resume", "auto"});
  expect_same_run("reference", "two-then-one");
  // One process for 3 steps, then two ZeRO-2 ranks: the whole optimizer file is re-sharded.
  run(1, "one-then-two", {"train.steps=3"});
  run(2, "one-then-two", {"train.steps=6", "dist.zero=2"}, {"--resume", "auto"});
  expect_same_run("reference", "one-then-two");
}

TEST_F(DataParallelTest, ARankThatDiesMakesTheOtherExitWithinTheTimeout) {
  const auto a = args("killed", {"train.steps=100000", "dist.timeout_s=5"});
  const auto pids = test::spawn_ranks(2, a, dir_ / "killed");
  // Wait for rank 0 to log training steps, then kill rank 1 without warning.
  for (int i = 0; i < 600 && test::read_metrics(dir_ / "killed").size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(test::read_metrics(dir_ / "killed").size(), 2u) << test::read_text(dir_ / "killed-0.log");
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(pids[1], SIGKILL), 0);
  test::wait_exit(pids[1], seconds(10));
  const auto code = test::wait_exit(pids[0], seconds(30));
  const auto waited = std::chrono::steady_clock::now() - killed_at;
  const std::string log = test::read_text(dir_ / "killed-0.log");
  EXPECT_EQ(code, std::optional<int>(exit_code::kPeerLost)) << log;
  EXPECT_LT(waited, seconds(5 + 10));
  EXPECT_NE(log.find("error: rank 0: "), std::string::npos) << log;
  EXPECT_NE(log.find("another rank died"), std::string::npos) << log;
}

TEST_F(DataParallelTest, ARankThatHangsMakesTheOtherExitAfterTheTimeout) {
  const auto a = args("hung", {"train.steps=100000", "dist.timeout_s=3"});
  const auto pids = test::spawn_ranks(2, a, dir_ / "hung");
  for (int i = 0; i < 600 && test::read_metrics(dir_ / "hung").size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(test::read_metrics(dir_ / "hung").size(), 2u) << test::read_text(dir_ / "hung-0.log");
  // A stopped process keeps its sockets open: only the timeout can tell.
  const auto stopped_at = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(pids[1], SIGSTOP), 0);
  const auto code = test::wait_exit(pids[0], seconds(30));
  const auto waited = std::chrono::steady_clock::now() - stopped_at;
  ::kill(pids[1], SIGKILL);
  test::wait_exit(pids[1], seconds(10));
  const std::string log = test::read_text(dir_ / "hung-0.log");
  EXPECT_EQ(code, std::optional<int>(exit_code::kPeerLost)) << log;
  EXPECT_GE(waited, seconds(3));
  EXPECT_LT(waited, seconds(3 + 10));
  EXPECT_NE(log.find("waited 3 s for the other ranks (dist.timeout_s)"), std::string::npos) << log;
}

TEST_F(DataParallelTest, SigtermOnOneRankStopsBothWithOneCheckpoint) {
  const auto a = args("stopped", {"train.steps=100000", "dist.zero=2"});
  const auto pids = test::spawn_ranks(2, a, dir_ / "stopped");
  for (int i = 0; i < 600 && test::read_metrics(dir_ / "stopped").size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(::kill(pids[1], SIGTERM), 0);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(test::wait_exit(pids[static_cast<size_t>(r)], seconds(60)), std::optional<int>(exit_code::kStopped))
        << test::read_text(dir_ / ("stopped-" + std::to_string(r) + ".log"));
  }
  const auto store = train::CheckpointStore(dir_ / "stopped");
  ASSERT_EQ(store.complete_steps().size(), 1u);
  const auto checkpoint = *store.latest();
  EXPECT_EQ(checkpoint.filename().string(), train::checkpoint_name(static_cast<int64_t>(test::read_metrics(dir_ / "stopped").size())));
  EXPECT_TRUE(fs::exists(checkpoint / "optimizer-rank-00001-of-00002.safetensors"));
}

}  // namespace
}  // namespace ssa::dist
