// The numbers reported for every training step: one console line per `log.every` steps
// (rank 0), one metrics.jsonl line per step, TensorBoard scalars.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ssa::train {

struct StepMetrics {
  int64_t step = 0;         // 1-based: steps done after this one
  int64_t total_steps = 0;
  double loss = 0, ce = 0, align = 0;
  bool has_align = false;   // ssa method
  std::string modes;        // per micro-batch: F, S or M (layers differ)
  double grad_norm = 0;
  double lr = 0;
  int64_t tokens = 0;       // input tokens seen so far (all ranks)
  double tokens_per_s = 0;
  std::optional<double> mfu;  // fraction; nullopt on a CPU or an unknown GPU
  int64_t peak_memory_bytes = 0;
  double data_wait_share = 0;  // share of the step's wall time spent waiting for batches
  // Data-parallel runs: share of the step's wall time spent waiting for communication that no
  // computation hid (dist/data_parallel.h); nullopt in one process.
  std::optional<double> communication_share;
  double step_seconds = 0;
  double eta_seconds = 0;
  bool skipped = false;
  int64_t skipped_total = 0;
  std::map<std::string, double> validation;  // val_loss_full, val_ppl_full, ... on eval steps
};

// "full", "sparse" or "mixed" for a step's micro-batch modes.
std::string mode_summary(const std::string& modes);

// The metrics.jsonl object: step, loss, ce, align, mode, modes, grad_norm, lr, tokens,
// tokens_per_s, mfu (null when unknown), peak_mem_bytes, data_wait, comm (null in one process), step_s, skipped,
// skipped_total and the validation values.
nlohmann::json to_json(const StepMetrics& m);

// "step 120/1000 | loss 3.2145 | ce 3.1021 | align 0.0112 | mode full | gnorm 0.84 | lr 2.99e-04 |
//  tok/s 41,211 | mfu 41.2% | mem 61.3GiB | data 0.4% | comm 3.1% | eta 5h12m" (comm: data-parallel runs)
std::string console_line(const StepMetrics& m);

// The TensorBoard scalars of a step (train/..., val/...).
std::vector<std::pair<std::string, float>> tensorboard_scalars(const StepMetrics& m);

// "5h12m", "3m07s", "42s".
std::string format_duration(double seconds);

// metrics.jsonl, appended line by line and flushed. Opening for a resumed run first drops the
// lines of steps after `resume_step` (logged by the interrupted run after its last checkpoint),
// so the file holds each step once.
class MetricsFile {
 public:
  MetricsFile(const std::filesystem::path& path, std::optional<int64_t> resume_step);
  void write(const nlohmann::json& line);

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace ssa::train
