// End-to-end runs of the trainer on tiny models and synthetic shards (CPU, fp32).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "ssa/io/atomic_file.h"
#include "ssa/io/safetensors.h"
#include "ssa/model/model_folder.h"
#include "ssa/model/tensor_file.h"
#include "ssa/train/checkpoint_store.h"
#include "ssa/train/shard_batch_source.h"
#include "ssa/train/trainer.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"
#include "train/train_fixture.h"

namespace ssa::train {
namespace {

namespace fs = std::filesystem;

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override { test::write_shards(dir_ / "data", test::copy_task_documents(240, 5, 6, 1)); }

  config::Config config(const std::string& run, const std::vector<std::string>& extra = {}) {
    return test::tiny_config(dir_ / run, dir_ / "data", extra);
  }

  TrainSummary run(const config::Config& c, const std::string& resume = "",
                   std::function<bool(int64_t)> poison = nullptr) {
    return test::run_training(c, resume, std::move(poison));
  }

  test::TempDir dir_;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_F(TrainerTest, ResumedRunIsBitIdenticalToAnUninterruptedOne) {
  const std::vector<std::string> ssa = {"ssa.method=ssa", "ssa.p_full=0.5", "checkpoint.every=0"};
  const auto whole = run(config("whole", ssa));
  EXPECT_EQ(whole.outcome, TrainOutcome::kCompleted);
  EXPECT_EQ(whole.step, 8);

  auto first_half = ssa;
  first_half.push_back("train.steps=4");
  const auto half = run(config("split", first_half));
  EXPECT_EQ(half.step, 4);
  const auto resumed = run(config("split", ssa), "auto");
  EXPECT_EQ(resumed.step, 8);

  const auto a = test::read_metrics(dir_ / "whole"), b = test::read_metrics(dir_ / "split");
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  std::string all_modes;
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i + 1));
    EXPECT_EQ(b[i]["step"], a[i]["step"]);
    for (const char* key : {"loss", "ce", "align", "grad_norm", "lr", "tokens", "modes"}) {
      EXPECT_EQ(b[i][key], a[i][key]) << key;  // doubles compared exactly (JSON round-trips them)
    }
    all_modes += a[i]["modes"].get<std::string>();
  }
  // Both modes were drawn, so the sampler's counter really was restored.
  EXPECT_NE(all_modes.find('F'), std::string::npos);
  EXPECT_NE(all_modes.find('S'), std::string::npos);
  for (const char* key : {"val_loss_full", "val_loss_sparse"}) EXPECT_EQ(b[3][key], a[3][key]);

  const auto wa = model::read_tensor_file(whole.checkpoint / io::kSingleWeightsFile);
  const auto wb = model::read_tensor_file(resumed.checkpoint / io::kSingleWeightsFile);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, tensor] : wa) EXPECT_TRUE(torch::equal(tensor, wb.at(name))) << name;
  const auto oa = model::read_tensor_file(whole.checkpoint / kOptimizerFile);
  const auto ob = model::read_tensor_file(resumed.checkpoint / kOptimizerFile);
  for (const auto& [name, tensor] : oa) EXPECT_TRUE(torch::equal(tensor, ob.at(name))) << name;

  // The changed step count is allowed and logged.
  EXPECT_NE(read_text(dir_ / "split" / "train.log").find("train.steps changed from 4 to 8"), std::string::npos);
}

TEST_F(TrainerTest, ResumeRefusesAnotherModelShapeOrShardSet) {
  run(config("run", {"train.steps=2"}));
  try {
    run(config("run", {"train.steps=4", "model.num_layers=3"}), "auto");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("model.num_layers"), std::string::npos) << e.what();
  }
  test::write_shards(dir_ / "other", test::copy_task_documents(250, 5, 6, 1));
  auto other = config("run", {"train.steps=4"});
  other.data.path = (dir_ / "other").string();
  try {
    run(other, "auto");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("shard set"), std::string::npos) << e.what();
  }
  // A new learning rate is fine.
  EXPECT_EQ(run(config("run", {"train.steps=4", "optim.lr=1e-3"}), "auto").step, 4);
  EXPECT_NE(read_text(dir_ / "run" / "train.log").find("optim.lr changed"), std::string::npos);
  // Starting over in a folder that holds checkpoints needs --resume.
  EXPECT_THROW(run(config("run", {"train.steps=6"})), UsageError);
}

TEST_F(TrainerTest, CheckpointsAreModelFoldersWithRetention) {
  const auto summary = run(config("run", {"checkpoint.every=1", "checkpoint.keep_last=2", "checkpoint.keep_every=4"}));
  CheckpointStore store(dir_ / "run");
  EXPECT_EQ(store.complete_steps(), (std::vector<int64_t>{4, 7, 8}));
  EXPECT_EQ(summary.checkpoint, store.step_folder(8));
  EXPECT_EQ(read_text(store.folder() / kLatestFile), "step-00000008\n");
  for (const char* name : {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json", "DONE"}) {
    EXPECT_TRUE(fs::exists(summary.checkpoint / name)) << name;
  }
  // `ssa score` / `ssa eval` read it as a plain model folder.
  auto loaded = model::load_model_folder(summary.checkpoint);
  EXPECT_EQ(loaded.model->config().num_layers, 2);
  EXPECT_EQ(loaded.attention.block_size, 4);
  const auto state = read_checkpoint(summary.checkpoint).state;
  EXPECT_EQ(state.step, 8);
  EXPECT_EQ(state.micro_batches, 16);  // 8 steps x 2 micro-batches
  EXPECT_EQ(state.tokens_seen, 8 * 4 * 32);
  EXPECT_EQ(state.data["rows_consumed"], 32);
  EXPECT_FALSE(state.torch_cpu_rng.empty());
  EXPECT_EQ(state.config_hash, config::config_hash(config("run", {"checkpoint.every=1", "checkpoint.keep_last=2",
                                                                  "checkpoint.keep_every=4"})));
}

TEST_F(TrainerTest, PartialOrCorruptCheckpointsAreClearErrors) {
  const auto summary = run(config("run", {"train.steps=2", "checkpoint.every=0"}));
  fs::remove(summary.checkpoint / kDoneFile);
  try {
    run(config("run", {"train.steps=4"}), "auto");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("incomplete"), std::string::npos) << e.what();
  }
  io::write_file_atomic(summary.checkpoint / kDoneFile, "step 2\n");
  const auto weights = summary.checkpoint / io::kSingleWeightsFile;
  const auto bytes = io::read_file(weights);
  io::write_file_atomic(weights, bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(run(config("run", {"train.steps=4"}), "auto"), FormatError);
  EXPECT_THROW(run(config("other", {"train.steps=4"}), (dir_ / "nowhere").string()), UsageError);
}

TEST_F(TrainerTest, NonFiniteStepsAreSkippedAndTooManyStopTheRun) {
  const auto once = run(config("once"), "", [](int64_t step) { return step == 2; });
  EXPECT_EQ(once.outcome, TrainOutcome::kCompleted);
  const auto lines = test::read_metrics(dir_ / "once");
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_TRUE(lines[2]["skipped"].get<bool>());
  EXPECT_TRUE(lines[2]["loss"].is_null());
  EXPECT_EQ(lines[7]["skipped_total"], 1);
  EXPECT_FALSE(lines[3]["skipped"].get<bool>());
  EXPECT_TRUE(lines[3]["loss"].is_number());

  // Steps 3.. poisoned, two allowed in a row: the run stops after step 5 with the weights of step 3.
  const auto diverged = run(config("diverged", {"train.max_bad_steps=2", "checkpoint.every=0"}), "",
                            [](int64_t step) { return step >= 3; });
  EXPECT_EQ(diverged.outcome, TrainOutcome::kDiverged);
  EXPECT_EQ(diverged.step, 5);
  EXPECT_EQ(exit_code_of(diverged.outcome), exit_code::kDiverged);
  const auto good = run(config("good", {"train.steps=3", "checkpoint.every=0"}));
  const auto wd = model::read_tensor_file(diverged.checkpoint / io::kSingleWeightsFile);
  const auto wg = model::read_tensor_file(good.checkpoint / io::kSingleWeightsFile);
  for (const auto& [name, tensor] : wg) EXPECT_TRUE(torch::equal(tensor, wd.at(name))) << name;
  EXPECT_EQ(read_checkpoint(diverged.checkpoint).state.skipped_steps, 2);
}

TEST_F(TrainerTest, MetricsLinesHaveEveryKeyAndFiniteValues) {
  run(config("run", {"ssa.method=ssa"}));
  const bool on_gpu = torch::cuda::is_available();  // train.device auto
  const auto lines = test::read_metrics(dir_ / "run");
  ASSERT_EQ(lines.size(), 8u);
  int64_t previous_tokens = 0;
  for (const auto& line : lines) {
    for (const char* key : {"step", "loss", "ce", "align", "grad_norm", "lr", "tokens", "tokens_per_s",
                            "peak_mem_bytes", "data_wait", "step_s"}) {
      ASSERT_TRUE(line.contains(key)) << key;
      ASSERT_TRUE(line[key].is_number()) << key << " in " << line.dump();
      EXPECT_TRUE(std::isfinite(line[key].get<double>())) << key;
    }
    ASSERT_TRUE(line.contains("mfu"));
    if (on_gpu) {
      // The GPU machines (H100, H200) have a known bf16 peak.
      ASSERT_TRUE(line["mfu"].is_number()) << line.dump();
      EXPECT_GT(line["mfu"].get<double>(), 0.0);
      EXPECT_LT(line["mfu"].get<double>(), 1.0);
    } else {
      EXPECT_TRUE(line["mfu"].is_null());  // CPU: no peak to compare with
    }
    EXPECT_TRUE(line["mode"] == "full" || line["mode"] == "sparse" || line["mode"] == "mixed");
    EXPECT_GT(line["tokens"].get<int64_t>(), previous_tokens);
    previous_tokens = line["tokens"].get<int64_t>();
  }
  for (const char* key : {"val_loss_full", "val_ppl_full", "val_loss_sparse", "val_ppl_sparse"}) {
    ASSERT_TRUE(lines[3].contains(key)) << key;
    EXPECT_TRUE(std::isfinite(lines[3][key].get<double>()));
    EXPECT_FALSE(lines[2].contains(key));
  }
  EXPECT_NEAR(std::exp(lines[3]["val_loss_full"].get<double>()), lines[3]["val_ppl_full"].get<double>(), 1e-9);
  const auto log = read_text(dir_ / "run" / "train.log");
  EXPECT_NE(log.find("step 2/8 | loss"), std::string::npos);
  EXPECT_EQ(log.find("mfu n/a") != std::string::npos, !on_gpu);
  EXPECT_TRUE(fs::exists(dir_ / "run" / "config.yaml"));
}

TEST_F(TrainerTest, TinyModelLearnsTheRepetitionTask) {
  // Rows hold one of 16 patterns of 5 tokens repeated 6 times: once the pattern is known every
  // token is predictable, so the loss can fall from ln(64) = 4.16 to about ln(16) / 31 = 0.09.
  // Measured: 0.24 (last 10 steps) and 0.13 (validation) after 80 steps.
  const auto c = config("learn", {"train.steps=80", "optim.lr=1e-2", "schedule.type=cosine", "schedule.warmup_steps=10",
                                  "schedule.min_lr=1e-3", "ssa.method=ssa", "checkpoint.every=0", "eval.every=80",
                                  "train.global_batch_size=8", "train.micro_batch_size=4", "model.hidden_size=64",
                                  "model.head_dim=16", "model.intermediate_size=128"});
  run(c);
  const auto lines = test::read_metrics(dir_ / "learn");
  ASSERT_EQ(lines.size(), 80u);
  EXPECT_GT(lines[0]["ce"].get<double>(), 3.5);
  double last = 0;
  for (size_t i = 70; i < 80; ++i) last += lines[i]["ce"].get<double>() / 10;
  EXPECT_LT(last, 0.6);
  EXPECT_LT(lines[79]["val_loss_full"].get<double>(), 0.6);
  EXPECT_LT(lines[79]["val_loss_sparse"].get<double>(), 0.6);
}

}  // namespace
}  // namespace ssa::train
