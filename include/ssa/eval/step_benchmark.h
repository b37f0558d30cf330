// `ssa bench step`: warm-up and timed training steps (TrainStep, as `ssa train` runs them) on
// synthetic tokens, for each attention method in one process with the same initial weights and
// tokens, so that the methods compare on the same machine state. Works on the CPU and on a GPU.
//
// The step time is split as follows (every figure is a mean over the timed steps, in seconds):
// - optimizer: the step minus its forward and backward passes (TrainStep's
//   StepResult::forward_backward_seconds): gradient norm, clipping, AdamW, the bf16 copy.
// - communication: 0, the benchmark runs in one process.
// - attention: the attention op of one layer (full, sparse, or both streams and the alignment
//   loss for ssa) timed alone, forward + backward, on random q, k, v of the step's shapes, times
//   the layers and the micro-batches, plus one more forward for every activation-checkpointed
//   layer (recomputed in backward) as the recomputation runs it: with the block selection, and
//   the attention results where the ops keep them, of a first run (model::KeptLayer).
// - matmul: the model's GEMMs (q, k, v, o and gate projections, the MLP, the LM head) timed
//   alone as torch::matmul on random tensors of the step's shapes, forward (x W^T) and backward
//   (dY W and dY^T x), with the same recomputation count; the LM head in chunks of
//   kLogitsChunk rows, never recomputed (train/linear_cross_entropy.h).
// - elementwise: forward + backward minus attention and matmul, a derived remainder (norms,
//   RoPE, SwiGLU, gate, cross entropy, casts, gradient accumulation). When the isolated
//   attention and matmul times exceed the measured forward + backward, both are scaled down to
//   fit it and elementwise is 0 (`fitted` in the JSON; the isolated times are kept there).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ssa/config/config.h"

namespace ssa::eval {

struct StepBenchmarkOptions {
  std::vector<std::string> methods{"full", "sparse", "ssa"};
  // Kernel sets, each measured for every method: `fused` (train.fused_kernels and optim.fused as
  // configured) and `eager` (both off: ATen ops for RMSNorm, RoPE, SwiGLU and the loss, AdamW per tensor).
  std::vector<std::string> kernels{"fused"};
  int64_t seq_len = 0;           // 0: train.seq_len of the configuration
  int64_t micro_batch_size = 0;  // 0: train.micro_batch_size of the configuration
  int64_t micro_batches = 1;     // per optimizer step (gradient accumulation)
  // Documents per synthetic row (cut at random places; position ids restart at each), which
  // attention.document_mask keeps apart.
  int64_t documents = 1;
  int warmup = 2;
  int steps = 5;
  std::string out;      // JSON path; empty for none
  std::string command;  // the command line, recorded in the JSON
};

// Throws UsageError for an empty list or a name other than full, sparse and ssa (methods) or
// fused and eager (kernels), and for counts out of range.
void check_step_benchmark_options(const StepBenchmarkOptions& options);

struct StepTimeSplit {
  double attention = 0;
  double matmul = 0;
  double elementwise = 0;
  double optimizer = 0;
  double communication = 0;

  double total() const { return attention + matmul + elementwise + optimizer + communication; }
};

struct MethodMeasurement {
  std::string method;
  std::string kernels;  // fused | eager
  double step_seconds = 0;              // mean wall time of a timed step
  double forward_backward_seconds = 0;  // mean
  // Each timed step, in order: the means above hide a slow step (a host stall, a clock change).
  std::vector<double> each_step_seconds, each_forward_backward_seconds;
  double tokens_per_second = 0;
  double flops_per_token = 0;           // train/model_flops.h
  std::optional<double> mfu;            // on a GPU of the peak table only
  StepTimeSplit split;                  // sums to step_seconds
  double isolated_attention_seconds = 0;
  double isolated_matmul_seconds = 0;
  bool fitted = false;  // attention and matmul were scaled down to fit forward + backward
  int64_t peak_memory_bytes = 0;
  double last_loss = 0;
  int64_t skipped_steps = 0;  // non-finite steps (no update: the optimizer share is then too small)
};

struct StepBenchmarkReport {
  std::string command;
  std::string date;  // UTC, ISO 8601
  std::string device;
  std::string dtype;
  std::string torch_version;
  std::string activation_checkpointing;
  bool keep_attention = false;  // train.activation_checkpointing_keep_attention
  bool document_mask = false;   // attention.document_mask
  int64_t documents = 1;        // per synthetic row
  int64_t parameters = 0;
  int64_t seq_len = 0;
  int64_t micro_batch_size = 0;
  int64_t micro_batches = 0;
  int64_t tokens_per_step = 0;
  int warmup = 0;
  int steps = 0;
  bool cuda = false;  // peak memory: CUDA allocator peak (reset per method), else process peak RSS
  std::vector<MethodMeasurement> methods;
};

// Runs the benchmark on train.device with train.precision (as `ssa train` picks them).
StepBenchmarkReport run_step_benchmark(const config::Config& config, const StepBenchmarkOptions& options);

// The Markdown table printed to stdout, with a note on how the split is measured.
std::string step_benchmark_table(const StepBenchmarkReport& report);

std::string step_benchmark_json(const StepBenchmarkReport& report);

}  // namespace ssa::eval
