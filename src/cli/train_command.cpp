// `ssa train`: pretraining from a configuration, continuing a run with --resume, starting from
// another model's weights with --init-from.
#include <CLI/CLI.hpp>
#include <yaml-cpp/yaml.h>

#include <memory>

#include "ssa/cli/command.h"
#include "ssa/cli/config_options.h"
#include "ssa/dist/launch_environment.h"
#include "ssa/train/shard_batch_source.h"
#include "ssa/train/trainer.h"

namespace ssa::cli {
namespace {

struct TrainOptions {
  ConfigOptions config;
  std::string resume;
  std::string init_from;
};

void run_train(const TrainOptions& o) {
  ConfigOptions config_options = o.config;
  if (!o.init_from.empty()) {
    // As the override train.init_from=PATH, quoted so that any path stays one YAML string.
    YAML::Emitter quoted;
    quoted << YAML::DoubleQuoted << o.init_from;
    config_options.overrides.push_back(std::string("train.init_from=") + quoted.c_str());
  }
  config::Config c;
  if (!resolve_config(config_options, c)) return;
  train::TrainerOptions options;
  options.launch = dist::read_launch_environment();
  options.console = options.launch.rank == 0;
  options.resume = o.resume;
  train::ShardBatchSource data(c, options.launch.rank, options.launch.world_size);
  const auto summary = train::train(c, data, options);
  set_exit_code(train::exit_code_of(summary.outcome));
}

const Registration kRegistration("train", [](CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  auto* cmd = app.add_subcommand(
      "train",
      "Train a model (run folder train.run_dir). Exit codes: 0 done, 3 stopped by SIGTERM/SIGINT after a checkpoint, "
      "4 diverged (train.max_bad_steps non-finite steps in a row), 5 another rank of a distributed run died or timed "
      "out, 1 failure, 2 bad configuration. Several processes: start it with torchrun or srun (docs/distributed.md)");
  add_config_options(*cmd, options->config);
  cmd->add_option("--resume", options->resume,
                  "auto: continue from train.run_dir's latest checkpoint (or start fresh when there is none); or a "
                  "checkpoint folder or run folder to continue from");
  cmd->add_option("--init-from", options->init_from,
                  "Model folder or checkpoint folder whose weights start the run (train.init_from): fresh optimizer, "
                  "schedule and data position; shapes must match the configured model, RoPE settings may differ. "
                  "Ignored when --resume finds a checkpoint of the run");
  cmd->callback([options] { run_train(*options); });
});

}  // namespace
}  // namespace ssa::cli
