// `ssa bench attention`: kernel benchmarks (see include/ssa/eval/attention_benchmark.h).
#include <CLI/CLI.hpp>
#include <memory>
#include <sstream>

#include "ssa/cli/command.h"
#include "ssa/eval/attention_benchmark.h"
#include "ssa/util/error.h"

namespace ssa::cli {
namespace {

const Registration kRegistration("bench", [](CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Measure kernels on the GPU");
  bench->require_subcommand(1);

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
    std::ostringstream command;
    command << "ssa bench attention";
    for (const auto* option : attention->get_options()) {
      if (option->count() == 0 || option->get_name() == "--help") continue;
      command << " " << option->get_name();
      for (const auto& value : option->results()) command << " " << value;
    }
    options->command = command.str();
#ifdef SSA_HAVE_CUDA_KERNELS
    eval::run_attention_benchmark(*options);
#else
    throw UsageError("ssa bench attention needs a CUDA build of ssa");
#endif
  });
});

}  // namespace
}  // namespace ssa::cli
