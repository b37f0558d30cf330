// `ssa train`: pretraining from a configuration, continuing a run with --resume.
#include <CLI/CLI.hpp>
#include <memory>

#include "ssa/cli/command.h"
#include "ssa/cli/config_options.h"
#include "ssa/train/shard_batch_source.h"
#include "ssa/train/trainer.h"

namespace ssa::cli {
namespace {

struct TrainOptions {
  ConfigOptions config;
  std::string resume;
};

void run_train(const TrainOptions& o) {
  config::Config c;
  if (!resolve_config(o.config, c)) return;
  train::ShardBatchSource data(c);
  train::TrainerOptions options;
  options.resume = o.resume;
  const auto summary = train::train(c, data, options);
  set_exit_code(train::exit_code_of(summary.outcome));
}

const Registration kRegistration("train", [](CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  auto* cmd = app.add_subcommand(
      "train",
      "Train a model (run folder train.run_dir). Exit codes: 0 done, 3 stopped by SIGTERM/SIGINT after a checkpoint, "
      "4 diverged (train.max_bad_steps non-finite steps in a row), 1 failure, 2 bad configuration");
  add_config_options(*cmd, options->config);
  cmd->add_option("--resume", options->resume,
                  "auto: continue from train.run_dir's latest checkpoint (or start fresh when there is none); or a "
                  "checkpoint folder or run folder to continue from");
  cmd->callback([options] { run_train(*options); });
});

}  // namespace
}  // namespace ssa::cli
