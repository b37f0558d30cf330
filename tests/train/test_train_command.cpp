// `ssa train` as a user runs it: a subprocess, stopped by signals, resumed, its checkpoint scored.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include "ssa/train/checkpoint_store.h"
#include "ssa/util/error.h"
#include "support/run_command.h"
#include "support/temp_dir.h"
#include "train/train_fixture.h"

namespace ssa::train {
namespace {

namespace fs = std::filesystem;

// Starts `ssa train ARGS` with stdout and stderr in `log`; returns its pid.
pid_t spawn_train(std::vector<std::string> args, const fs::path& log) {
  args.insert(args.begin(), "train");
  return test::spawn_ssa(std::move(args), log);
}

size_t metric_lines(const fs::path& run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  size_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

// Waits until the run has logged `lines` steps (false after 60 s).
bool wait_for_steps(const fs::path& run_dir, size_t lines) {
  for (int i = 0; i < 600; ++i) {
    if (metric_lines(run_dir) >= lines) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class TrainCommandTest : public ::testing::Test {
 protected:
  void SetUp() override { test::write_shards(dir_ / "data", test::copy_task_documents(240, 5, 6, 1)); }
  std::vector<std::string> args(const std::string& run, const std::vector<std::string>& extra) {
    auto out = test::tiny_overrides(dir_ / run, dir_ / "data");
    out.insert(out.end(), extra.begin(), extra.end());
    return out;
  }
  test::TempDir dir_;
};

TEST_F(TrainCommandTest, SigtermWritesALoadableCheckpointAndTheRunResumes) {
  const auto run_dir = dir_ / "run";
  const pid_t pid = spawn_train(args("run", {"train.steps=100000", "checkpoint.every=0", "eval.every=0"}), dir_ / "log");
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_for_steps(run_dir, 3)) << read_text(dir_ / "log");
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << read_text(dir_ / "log");
  EXPECT_EQ(WEXITSTATUS(status), exit_code::kStopped) << read_text(dir_ / "log");
  EXPECT_NE(read_text(dir_ / "log").find("stopping after step"), std::string::npos);

  const auto latest = CheckpointStore(run_dir).latest();
  ASSERT_TRUE(latest);
  EXPECT_TRUE(is_complete_checkpoint(*latest));
  const int64_t stopped_at = read_checkpoint(*latest).state.step;
  EXPECT_GE(stopped_at, 3);
  EXPECT_EQ(static_cast<int64_t>(metric_lines(run_dir)), stopped_at);

  std::ofstream(dir_ / "tokens.txt") << "2 3 4 5 6 2 3 4 5 6 2 3 4 5 6 1\n";
  const auto score = test::run_ssa("score --model " + latest->string() + " --tokens " + (dir_ / "tokens.txt").string());
  EXPECT_EQ(score.exit_code, 0) << score.output;
  EXPECT_NE(score.output.find("perplexity"), std::string::npos);

  const auto resumed = test::run_ssa(
      "train --resume auto " +
      [&] {
        std::string joined;
        for (const auto& a : args("run", {"train.steps=" + std::to_string(stopped_at + 2), "checkpoint.every=0",
                                          "eval.every=0"}))
          joined += a + " ";
        return joined;
      }());
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(static_cast<int64_t>(metric_lines(run_dir)), stopped_at + 2);
  EXPECT_EQ(read_checkpoint(*CheckpointStore(run_dir).latest()).state.step, stopped_at + 2);
}

TEST_F(TrainCommandTest, ASecondSignalEndsTheRunAtOnce) {
  const auto run_dir = dir_ / "run";
  // Steps of 64 micro-batches (a good fraction of a second), so the run is mid-step when the
  // second signal comes: sent once the first has been acknowledged (two signals sent together
  // would merge into one pending signal).
  const pid_t pid = spawn_train(
      args("run", {"train.steps=100000", "train.global_batch_size=128", "checkpoint.every=0", "eval.every=0"}),
      dir_ / "log");
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_for_steps(run_dir, 1)) << read_text(dir_ / "log");
  kill(pid, SIGINT);
  for (int i = 0; i < 500 && read_text(dir_ / "log").find("stop requested") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << read_text(dir_ / "log");
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

TEST_F(TrainCommandTest, ConfigurationErrorsExitWithTwo) {
  const auto no_data = test::run_ssa("train model.num_layers=2 train.run_dir=" + (dir_ / "run").string());
  EXPECT_EQ(no_data.exit_code, exit_code::kUsage);
  EXPECT_NE(no_data.output.find("data.path"), std::string::npos) << no_data.output;
  std::string joined;
  for (const auto& a : args("run", {"train.global_batch_size=5"})) joined += a + " ";
  const auto geometry = test::run_ssa("train " + joined);
  EXPECT_EQ(geometry.exit_code, exit_code::kUsage);
  EXPECT_NE(geometry.output.find("train.micro_batch_size"), std::string::npos) << geometry.output;
}

}  // namespace
}  // namespace ssa::train
