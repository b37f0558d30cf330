// `ssa bench attention`: kernel benchmarks (see include/ssa/eval/attention_benchmark.h).
// `ssa bench step`: training-step benchmark (see include/ssa/eval/step_benchmark.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include "ssa/cli/command.h"
#include "ssa/cli/config_options.h"
#include "ssa/eval/attention_benchmark.h"
#include "ssa/eval/step_benchmark.h"
#include "ssa/io/atomic_file.h"
#include "ssa/util/error.h"

namespace ssa::cli {
namespace {

// The command line as given, for the benchmark JSON.
std::string command_line(const std::string& name, const CLI::App& command) {
  std::ostringstream line;
  line << name;
  for (const auto* option : command.get_options()) {
    if (option->count() == 0 || option->get_name() == "--help") continue;
    if (option->get_name() != "overrides") line << " " << option->get_name();
    for (const auto& value : option->results()) line << " " << value;
  }
  return line.str();
}

struct StepBenchmarkCommand {
  ConfigOptions config;
  eval::StepBenchmarkOptions options;
};

void run_step_benchmark_command(StepBenchmarkCommand& c) {
  eval::check_step_benchmark_options(c.options);
  // Checked before the run, which may take minutes, rather than when the JSON is written.
  const auto out_folder = std::filesystem::path(c.options.out).parent_path();
  if (!out_folder.empty() && !std::filesystem::is_directory(out_folder)) {
    throw UsageError("--out: folder " + out_folder.string() + " does not exist");
  }
  config::Config config;
  if (!resolve_config(c.config, config)) return;
  const auto report = eval::run_step_benchmark(config, c.options);
  std::fputs(eval::step_benchmark_table(report).c_str(), stdout);
  if (!c.options.out.empty()) io::write_file_atomic(c.options.out, eval::step_benchmark_json(report));
}

const Registration kRegistration("bench", [](CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Measure attention kernels (GPU) and training steps");
  bench->require_subcommand(1);

  auto step_command = std::make_shared<StepBenchmarkCommand>();
  auto& step_options = step_command->options;
  auto* step = bench->add_subcommand(
      "step",
      "Training steps (warm-up, then timed) on synthetic tokens for each method in one process, same initial "
      "weights: tokens/s, MFU (GPU), step time split into attention, matmul, elementwise, optimizer and "
      "communication, peak memory; a Markdown table, JSON with --out. The split: optimizer = step minus forward + "
      "backward; attention and matmul = the attention op and the model's GEMMs timed alone on the step's shapes, "
      "times layers, plus recomputation under activation checkpointing; elementwise = forward + backward minus "
      "those two (a derived remainder); communication = 0 (one process). Device and precision: train.device, "
      "train.precision");
  add_config_options(*step, step_command->config);
  step->add_option("--method", step_options.methods, "Methods to measure, in order: full, sparse, ssa")
      ->delimiter(',');
  step->add_option("--kernels", step_options.kernels,
                   "Kernel sets, each run for every method: fused (as configured), eager (train.fused_kernels and "
                   "optim.fused off); default fused")
      ->delimiter(',');
  step->add_option("--seq-len", step_options.seq_len, "Tokens per sequence (default: train.seq_len)");
  step->add_option("--micro-batch-size", step_options.micro_batch_size,
                   "Sequences per forward (default: train.micro_batch_size)");
  step->add_option("--micro-batches", step_options.micro_batches, "Micro-batches per optimizer step (default 1)");
  step->add_option("--documents", step_options.documents,
                   "Documents per synthetic row, cut at random places (position ids restart at each; separate "
                   "under attention.document_mask); default 1");
  step->add_option("--warmup", step_options.warmup, "Untimed steps per method (default 2)");
  step->add_option("--steps", step_options.steps, "Timed steps per method (default 5)");
  step->add_option("--out", step_options.out, "Write the results as JSON to this file");
  step->callback([step_command, step] {
    step_command->options.command = command_line("ssa bench step", *step);
    run_step_benchmark_command(*step_command);
  });

  auto options = std::make_shared<eval::AttentionBenchmarkOptions>();
  auto* attention = bench->add_subcommand(
      "attention", "Dense (cuDNN, FlashAttention-2) vs block-sparse attention: milliseconds, TFLOP/s, memory");
  attention->add_option("--out", options->out, "Write the results as JSON to this file");
  attention->add_option("--lengths", options->lengths, "Sequence lengths")->delimiter(',');
  attention->add_option("--tokens", options->tokens, "Tokens per step: batch = max(1, tokens / length)");
  attention->add_option("--kv-heads", options->kv_heads, "KV head counts of the shapes measured")->delimiter(',');
  attention->add_option("--q-heads", options->q_heads, "Query heads");
  attention->add_option("--head-dim", options->head_dim, "Head dimension (64 or 128)");
  attention->add_option("--block-sizes", options->block_sizes, "Block size of each sparse budget")->delimiter(',');
  attention->add_option("--topks", options->topks, "Selected blocks of each sparse budget")->delimiter(',');
  attention->add_option("--selection", options->selection, "group | head");
  attention->add_option("--warmup", options->warmup, "Untimed runs before timing");
  attention->add_option("--repeats", options->repeats, "Timed runs; the median is reported");
  attention->add_flag("--dense,!--no-dense", options->dense, "Measure the dense baselines (default)");
  attention->callback([options, attention] {
    if (options->block_sizes.size() != options->topks.size()) {
      throw UsageError("--block-sizes and --topks must list the same number of budgets");
    }
    if (options->repeats < 1 || options->warmup < 0) throw UsageError("--repeats must be >= 1 and --warmup >= 0");
    options->command = command_line("ssa bench attention", *attention);
#ifdef SSA_HAVE_CUDA_KERNELS
    eval::run_attention_benchmark(*options);
#else
    throw UsageError("ssa bench attention needs a CUDA build of ssa");
#endif
  });
});

}  // namespace
}  // namespace ssa::cli
