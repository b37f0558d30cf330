// `ssa bench step` end to end on the CPU with a tiny model: the JSON it writes, and one-line
// errors for bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>
#include <nlohmann/json.hpp>

#include "ssa/io/atomic_file.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace ssa::test {
namespace {

namespace fs = std::filesystem;

const std::string kTinyCpu = "-c " + std::string(SSA_SOURCE_DIR) +
                             "/configs/model/tiny.yaml model.vocab_size=300 model.bos_token_id=1 "
                             "model.eos_token_id=2 train.device=cpu";

void expect_valid_results(const nlohmann::json& report, const std::vector<std::string>& methods) {
  ASSERT_EQ(report["results"].size(), methods.size()) << report.dump(2);
  for (size_t i = 0; i < methods.size(); ++i) {
    const auto& r = report["results"][i];
    SCOPED_TRACE(methods[i]);
    EXPECT_EQ(r["method"], methods[i]);
    const double tokens_per_second = r["tokens_per_second"];
    EXPECT_TRUE(std::isfinite(tokens_per_second) && tokens_per_second > 0) << tokens_per_second;
    EXPECT_TRUE(r["mfu"].is_null()) << "no MFU on the CPU";
    const double step = r["step_seconds"];
    EXPECT_GT(step, 0);
    double sum = 0;
    for (const char* part : {"attention", "matmul", "elementwise", "optimizer", "communication"}) {
      const double seconds = r["split_seconds"][part];
      EXPECT_GE(seconds, 0) << part;
      sum += seconds;
    }
    EXPECT_NEAR(sum, step, 1e-6 * step + 1e-9) << r.dump(2);
    const auto each_step = r["each_step_seconds"].get<std::vector<double>>();
    const auto each_forward_backward = r["each_forward_backward_seconds"].get<std::vector<double>>();
    ASSERT_EQ(each_step.size(), static_cast<size_t>(report["steps"])) << "one time per timed step";
    ASSERT_EQ(each_forward_backward.size(), each_step.size());
    double each_sum = 0;
    for (size_t k = 0; k < each_step.size(); ++k) {
      EXPECT_GT(each_step[k], 0);
      EXPECT_LE(each_forward_backward[k], each_step[k]) << "step " << k;
      each_sum += each_step[k];
    }
    EXPECT_NEAR(each_sum / static_cast<double>(each_step.size()), step, 1e-9 + 1e-9 * step) << "the mean of the steps";
    EXPECT_GT(static_cast<double>(r["split_seconds"]["attention"]), 0);
    EXPECT_GT(static_cast<double>(r["split_seconds"]["matmul"]), 0);
    EXPECT_GT(static_cast<int64_t>(r["peak_memory_bytes"]), 0);
    EXPECT_TRUE(std::isfinite(static_cast<double>(r["last_loss"])));
  }
}

TEST(BenchStep, EveryMethodOnTheCpuWithASplitThatSumsToTheStep) {
  TempDir dir;
  const auto out = dir / "bench.json";
  auto r = run_ssa("bench step " + kTinyCpu + " --seq-len 64 --warmup 1 --steps 1 --method full,sparse,ssa --out " +
                   out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* row : {"| full |", "| sparse |", "| ssa |", "derived remainder"}) {
    EXPECT_NE(r.output.find(row), std::string::npos) << row << "\n" << r.output;
  }
  const auto report = nlohmann::json::parse(io::read_file(out));
  EXPECT_EQ(report["seq_len"], 64);
  EXPECT_EQ(report["tokens_per_step"], 64);
  EXPECT_EQ(report["peak_memory_kind"], "process_peak_rss");
  expect_valid_results(report, {"full", "sparse", "ssa"});
}

TEST(BenchStep, CountsRecomputationUnderActivationCheckpointingOfDocumentMaskedRows) {
  TempDir dir;
  const auto out = dir / "bench.json";
  auto r = run_ssa("bench step " + kTinyCpu + " train.activation_checkpointing=full attention.document_mask=true " +
                   "--seq-len 64 --micro-batches 2 --documents 3 --warmup 1 --steps 1 --method ssa --out " +
                   out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("3 document(s) per row, activation checkpointing full (attention kept)"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("MFU counts causal attention over whole rows"), std::string::npos) << r.output;
  const auto report = nlohmann::json::parse(io::read_file(out));
  EXPECT_EQ(report["activation_checkpointing"], "full");
  EXPECT_EQ(report["activation_checkpointing_keep_attention"], true);
  EXPECT_EQ(report["document_mask"], true);
  EXPECT_EQ(report["documents_per_row"], 3);
  EXPECT_EQ(report["tokens_per_step"], 128);
  expect_valid_results(report, {"ssa"});
}

// On the CPU both kernel sets run the same ATen ops; what is checked is that every (kernel set,
// method) pair runs, in order, and is labelled in the table and the JSON.
TEST(BenchStep, EachKernelSetRunsEveryMethod) {
  TempDir dir;
  const auto out = dir / "bench.json";
  auto r = run_ssa("bench step " + kTinyCpu + " --seq-len 32 --warmup 0 --steps 1 --method full,ssa " +
                   "--kernels fused,eager --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* row : {"| full |", "| ssa |", "| full (eager) |", "| ssa (eager) |"}) {
    EXPECT_NE(r.output.find(row), std::string::npos) << row << "\n" << r.output;
  }
  const auto report = nlohmann::json::parse(io::read_file(out));
  expect_valid_results(report, {"full", "ssa", "full", "ssa"});
  const std::vector<std::string> kernels{"fused", "fused", "eager", "eager"};
  for (size_t i = 0; i < kernels.size(); ++i) EXPECT_EQ(report["results"][i]["kernels"], kernels[i]) << i;

  r = run_ssa("bench step " + kTinyCpu + " --seq-len 32 --kernels fused,triton");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("triton"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

TEST(BenchStep, BadInputIsAOneLineUsageError) {
  TempDir dir;
  const auto out = dir / "bench.json";
  for (const char* documents : {"0", "65"}) {
    auto bad = run_ssa("bench step " + kTinyCpu + " --seq-len 64 --documents " + documents);
    EXPECT_EQ(bad.exit_code, 2) << bad.output;
    EXPECT_NE(bad.output.find("--documents"), std::string::npos) << bad.output;
    EXPECT_EQ(std::count(bad.output.begin(), bad.output.end(), '\n'), 1) << bad.output;
  }
  auto r = run_ssa("bench step " + kTinyCpu + " --seq-len 64 --method full,dense --out " + out.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("dense"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_FALSE(fs::exists(out));

  r = run_ssa("bench step " + kTinyCpu + " --steps 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;

  // A missing output folder is reported before the benchmark runs.
  r = run_ssa("bench step " + kTinyCpu + " --out " + (dir / "missing" / "bench.json").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

}  // namespace
}  // namespace ssa::test
