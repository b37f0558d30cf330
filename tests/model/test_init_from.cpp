// `ssa train --init-from` (train.init_from): a fresh run that starts from another model's weights
// with its own optimizer, schedule and data position; RoPE settings may change, shapes may not;
// a resumed run keeps going from its own checkpoint.
#include <gtest/gtest.h>

#include <algorithm>

#include "ssa/io/safetensors.h"
#include "ssa/model/initial_weights.h"
#include "ssa/model/tensor_file.h"
#include "ssa/train/checkpoint_store.h"
#include "ssa/train/shard_batch_source.h"
#include "ssa/train/trainer.h"
#include "ssa/util/error.h"
#include "support/run_command.h"
#include "support/temp_dir.h"
#include "train/train_fixture.h"

namespace ssa::train {
namespace {

namespace fs = std::filesystem;

// The continuation's RoPE: llama3 scaling, factor 4 from 16 positions (the source has none).
const std::vector<std::string> kScaledRope = {"model.rope_scaling.rope_type=llama3", "model.rope_scaling.factor=4",
                                              "model.rope_scaling.original_max_position_embeddings=16"};

class InitFromTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_shards(dir_ / "data", test::copy_task_documents(240, 5, 6, 1));
    source_ = run(config("source", {"train.steps=4", "checkpoint.every=0"})).checkpoint;
  }

  config::Config config(const std::string& run, const std::vector<std::string>& extra = {}) {
    return test::tiny_config(dir_ / run, dir_ / "data", extra);
  }

  TrainSummary run(const config::Config& c, const std::string& resume = "",
                   std::function<bool(int64_t)> poison = nullptr) {
    return test::run_training(c, resume, std::move(poison));
  }

  // `extra` overrides come last and win.
  config::Config continuation(const std::string& run, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> overrides = kScaledRope;
    overrides.push_back("train.init_from=" + source_.string());
    overrides.push_back("checkpoint.every=0");
    overrides.push_back("eval.every=0");
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    return config(run, overrides);
  }

  test::TempDir dir_;
  fs::path source_;
};

TEST_F(InitFromTest, LoadsTheWeightsWhateverTheRope) {
  // One step whose update is skipped (non-finite loss): the run's weights stay the loaded ones.
  const auto summary = run(continuation("run", {"train.steps=1"}), "", [](int64_t step) { return step == 0; });
  const auto loaded = model::read_tensor_file(summary.checkpoint / io::kSingleWeightsFile);
  const auto expected = model::read_tensor_file(source_ / io::kSingleWeightsFile);
  ASSERT_EQ(loaded.size(), expected.size());
  for (const auto& [name, tensor] : expected) {
    ASSERT_TRUE(loaded.count(name)) << name;
    EXPECT_TRUE(torch::equal(loaded.at(name), tensor)) << name;
  }
  const auto state = read_checkpoint(summary.checkpoint).state;
  EXPECT_EQ(state.init_from, source_.string());
  EXPECT_EQ(state.optimizer_updates, 0);
}

TEST_F(InitFromTest, StartsAFreshOptimizerScheduleAndDataPosition) {
  // Four steps with a checkpoint after each (the warmup of 2 steps must not be cut short).
  const auto c = continuation("run", {"train.steps=4", "checkpoint.every=1"});
  run(c);
  const fs::path first = CheckpointStore(c.train.run_dir).step_folder(1);
  const auto state = read_checkpoint(first).state;
  const auto source_state = read_checkpoint(source_).state;
  EXPECT_EQ(source_state.step, 4);
  EXPECT_EQ(state.step, 1);
  EXPECT_EQ(state.optimizer_updates, 1);
  EXPECT_EQ(state.micro_batches, source_state.micro_batches / 4);
  EXPECT_EQ(state.tokens_seen, source_state.tokens_seen / 4);
  // The data position of a random-init run's first step.
  const auto fresh = read_checkpoint(run(config("fresh", {"train.steps=1", "checkpoint.every=0"})).checkpoint).state;
  EXPECT_EQ(state.data, fresh.data);
  // Warmup from its start: schedule.warmup_steps = 2, so lr = optim.lr / 2 at step 0.
  const auto metrics = test::read_metrics(c.train.run_dir);
  ASSERT_EQ(metrics.size(), 4u);
  EXPECT_DOUBLE_EQ(metrics[0]["lr"].get<double>(), c.optim.lr / 2);
  // A fresh AdamW after one update holds m = (1 - beta1) g and v = (1 - beta2) g^2, so
  // v = (1 - beta2) / (1 - beta1)^2 m^2 element by element; the source's moments (four updates)
  // do not satisfy that.
  const double ratio = (1 - c.optim.beta2) / ((1 - c.optim.beta1) * (1 - c.optim.beta1));
  auto worst_mismatch = [&](const fs::path& checkpoint) {
    const auto moments = model::read_tensor_file(checkpoint / kOptimizerFile);
    double worst = 0;
    for (const auto& [key, m] : moments) {
      if (key.rfind("exp_avg.", 0) != 0) continue;
      const auto v = moments.at("exp_avg_sq." + key.substr(8)).to(torch::kFloat64);
      const auto m64 = m.to(torch::kFloat64);
      const double scale = std::max(v.abs().max().item<double>(), 1e-30);
      worst = std::max(worst, (v - ratio * m64 * m64).abs().max().item<double>() / scale);
    }
    return worst;
  };
  EXPECT_LT(worst_mismatch(first), 1e-4);
  EXPECT_GT(worst_mismatch(source_), 1e-2);
}

TEST_F(InitFromTest, AnotherShapeIsAClearError) {
  try {
    run(continuation("run", {"model.hidden_size=48"}));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("model.embed_tokens.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("[64, 32]"), std::string::npos) << message;
    EXPECT_NE(message.find("[64, 48]"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  EXPECT_THROW(run(continuation("layers", {"model.num_layers=1"})), ConfigError);
  EXPECT_THROW(run(continuation("gate", {"model.gate=none"})), ConfigError);
  auto missing = continuation("missing");
  missing.train.init_from = (dir_ / "nowhere").string();
  EXPECT_THROW(run(missing), UsageError);
}

TEST_F(InitFromTest, ResumeWins) {
  run(continuation("run", {"train.steps=1"}));
  // A checkpoint of the run exists: it continues from there, whatever train.init_from names now.
  auto again = continuation("run", {"train.steps=2"});
  again.train.init_from = (dir_ / "nowhere").string();
  const auto summary = run(again, "auto");
  EXPECT_EQ(summary.step, 2);
  EXPECT_EQ(read_checkpoint(summary.checkpoint).state.init_from, source_.string());
}

TEST_F(InitFromTest, CommandLineFlagSetsTheConfigKey) {
  const auto result = test::run_ssa("train --dump-config --init-from '" + source_.string() + "' train.steps=3");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("init_from: " + source_.string()), std::string::npos) << result.output;
}

}  // namespace
}  // namespace ssa::train
