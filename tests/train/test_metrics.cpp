#include <gtest/gtest.h>

#include "ssa/config/loader.h"
#include "ssa/train/model_flops.h"
#include "ssa/train/step_metrics.h"

namespace ssa::train {
namespace {

TEST(ModelFlops, MatmulParametersOfLlama32_1B) {
  config::Config c = config::load({}, {"model.gate=none"});
  // 1,235,814,400 parameters (tied) minus the 33 x 2048 norm weights.
  EXPECT_EQ(matmul_parameters(c.model), 1235814400 - 33 * 2048);
  c = config::load({}, {"model.gate=headwise"});
  EXPECT_EQ(matmul_parameters(c.model), 1235814400 - 33 * 2048 + 16 * 2048 * 32);
}

TEST(ModelFlops, AttendedKeys) {
  EXPECT_DOUBLE_EQ(mean_attended_keys(4, false, 0, 0), 2.5);   // (1 + 2 + 3 + 4) / 4
  EXPECT_DOUBLE_EQ(mean_attended_keys(4, true, 2, 1), 1.5);    // own block only: 1, 2, 1, 2
  EXPECT_DOUBLE_EQ(mean_attended_keys(6, true, 2, 2), 17.0 / 6);  // 1, 2, 3, 4, 3, 4
  EXPECT_DOUBLE_EQ(mean_attended_keys(8, true, 4, 8), mean_attended_keys(8, false, 0, 0));
}

TEST(ModelFlops, TrainingFlopsCountBothStreamsForSsa) {
  const auto full = config::load({}, {"ssa.method=full", "train.seq_len=8192"});
  const auto sparse = config::load({}, {"ssa.method=sparse", "train.seq_len=8192"});
  const auto ssa = config::load({}, {"ssa.method=ssa", "train.seq_len=8192"});
  const double dense = 6.0 * matmul_parameters(full.model);
  const double per_key = 12.0 * 32 * 64 * 16;
  EXPECT_DOUBLE_EQ(training_flops_per_token(full), dense + per_key * 4096.5);
  EXPECT_NEAR(training_flops_per_token(ssa) - dense,
              (training_flops_per_token(full) - dense) + (training_flops_per_token(sparse) - dense), 1.0);
}

TEST(ModelFlops, PeakTableNeverGuesses) {
  EXPECT_EQ(peak_bf16_flops("NVIDIA H100 80GB HBM3"), 989e12);
  EXPECT_EQ(peak_bf16_flops("NVIDIA H100 PCIe"), 756e12);
  EXPECT_EQ(peak_bf16_flops("NVIDIA H200"), 989e12);
  EXPECT_EQ(peak_bf16_flops("NVIDIA A100-SXM4-80GB"), 312e12);
  EXPECT_EQ(peak_bf16_flops("NVIDIA L40S"), 362e12);
  EXPECT_FALSE(peak_bf16_flops("Tesla V100-SXM2-16GB"));
  EXPECT_FALSE(peak_bf16_flops("cpu"));
}

TEST(StepMetrics, ConsoleLineAndJson) {
  StepMetrics m;
  m.step = 120;
  m.total_steps = 1000;
  m.loss = 3.21456;
  m.ce = 3.1;
  m.align = 0.0112;
  m.has_align = true;
  m.modes = "FS";
  m.grad_norm = 0.84;
  m.lr = 2.99e-4;
  m.tokens = 123456;
  m.tokens_per_s = 41211.4;
  m.mfu = 0.412;
  m.peak_memory_bytes = int64_t(61.3 * (1ll << 30));
  m.data_wait_share = 0.004;
  m.eta_seconds = 5 * 3600 + 12 * 60;
  EXPECT_EQ(console_line(m),
            "step 120/1000 | loss 3.2146 | ce 3.1000 | align 0.0112 | mode mixed | gnorm 0.840 | lr 2.990e-04 | "
            "tok/s 41,211 | mfu 41.2% | mem 61.30GiB | data 0.4% | eta 5h12m");
  m.mfu.reset();
  EXPECT_NE(console_line(m).find("mfu n/a"), std::string::npos);
  auto j = to_json(m);
  EXPECT_EQ(j["mode"], "mixed");
  EXPECT_TRUE(j["mfu"].is_null());
  EXPECT_TRUE(j["comm"].is_null());
  m.communication_share = 0.031;
  EXPECT_NE(console_line(m).find("| data 0.4% | comm 3.1% | eta 5h12m"), std::string::npos);
  EXPECT_DOUBLE_EQ(to_json(m)["comm"].get<double>(), 0.031);
  m.loss = std::nan("");
  m.skipped = true;
  EXPECT_TRUE(to_json(m)["loss"].is_null());
  EXPECT_NE(console_line(m).find("SKIPPED"), std::string::npos);
}

TEST(StepMetrics, Helpers) {
  EXPECT_EQ(mode_summary("FFF"), "full");
  EXPECT_EQ(mode_summary("SS"), "sparse");
  EXPECT_EQ(mode_summary("FSM"), "mixed");
  EXPECT_EQ(format_duration(42), "42s");
  EXPECT_EQ(format_duration(187), "3m07s");
  EXPECT_EQ(format_duration(2 * 86400 + 3 * 3600), "2d03h");
}

}  // namespace
}  // namespace ssa::train
