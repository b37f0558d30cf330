// scripts/gpu/gpu-queue.sh, which spreads one-GPU jobs over the GPUs of a machine: run here with
// SSA_GPUS naming pretend GPUs and shell commands as jobs.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <set>

#include "support/run_command.h"
#include "support/temp_dir.h"

namespace ssa {
namespace {

namespace fs = std::filesystem;

class GpuQueueScript : public ::testing::Test {
 protected:
  void write_queue(const std::string& text) { std::ofstream(dir_ / "queue.txt") << text; }

  test::CommandResult run_queue(const std::string& environment = "") {
    return test::run_command("cd " + dir_.path().string() + " && SSA_GPUS='0 1' " + environment + " bash " +
                             SSA_SOURCE_DIR + "/scripts/gpu/gpu-queue.sh queue.txt state");
  }

  // The commands run from the repository root: they write into the test's folder by absolute path.
  std::string out(const std::string& name) const { return (dir_ / name).string(); }

  static std::string read(const fs::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  static long long now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  }

  test::TempDir dir_;
};

TEST_F(GpuQueueScript, EveryGpuTakesJobsAndADoneJobIsNotRunAgain) {
  write_queue("# a comment, then a blank line\n\n"
              "sleep 1; echo $CUDA_VISIBLE_DEVICES > " + out("a") + "\n"
              "sleep 1; echo $CUDA_VISIBLE_DEVICES > " + out("b") + "\n"
              "echo $CUDA_VISIBLE_DEVICES > " + out("c") + "\n");
  const auto first = run_queue();
  ASSERT_EQ(first.exit_code, 0) << first.output;
  std::set<std::string> gpus;
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_TRUE(fs::exists(dir_ / name)) << first.output;
    gpus.insert(read(dir_ / name));
  }
  EXPECT_EQ(gpus, (std::set<std::string>{"0\n", "1\n"}));
  EXPECT_TRUE(fs::exists(dir_ / "state" / "logs" / "3.log"));

  for (const char* name : {"a", "b", "c"}) fs::remove(dir_ / name);
  const auto again = run_queue();
  EXPECT_EQ(again.exit_code, 0) << again.output;
  for (const char* name : {"a", "b", "c"}) EXPECT_FALSE(fs::exists(dir_ / name)) << again.output;
}

TEST_F(GpuQueueScript, AJobThatNeedsMoreTimeThanIsLeftWaitsForTheNextCall) {
  write_queue("@3600 touch " + out("long") + "\ntouch " + out("short") + "\n");
  const auto limited = run_queue("SSA_DEADLINE=" + std::to_string(now() + 60));
  EXPECT_EQ(limited.exit_code, 3) << limited.output;
  EXPECT_TRUE(fs::exists(dir_ / "short"));
  EXPECT_FALSE(fs::exists(dir_ / "long"));

  const auto unlimited = run_queue();
  EXPECT_EQ(unlimited.exit_code, 0) << unlimited.output;
  EXPECT_TRUE(fs::exists(dir_ / "long"));
}

TEST_F(GpuQueueScript, NothingStartsAfterTheDeadline) {
  write_queue("touch " + out("late") + "\n");
  const auto result = run_queue("SSA_DEADLINE=" + std::to_string(now() - 1));
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_FALSE(fs::exists(dir_ / "late"));
}

TEST_F(GpuQueueScript, AFailedJobFailsTheQueueButTheOthersStillRun) {
  write_queue("echo broken; exit 7\ntouch " + out("x") + "\ntouch " + out("y") + "\n");
  const auto result = run_queue();
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("line 1: broken"), std::string::npos) << result.output;
  EXPECT_TRUE(fs::exists(dir_ / "x"));
  EXPECT_TRUE(fs::exists(dir_ / "y"));
  // The failed job is not marked done: the next call tries it again.
  EXPECT_EQ(run_queue().exit_code, 1);
}

TEST_F(GpuQueueScript, MissingQueueFileIsAUsageError) {
  const auto result = run_queue();
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.output.find("no queue file"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace ssa
