// `ssa train`: the training run from a configuration — run folder, data, model, steps,
// validation, metrics, checkpoints, resume, and the fault handling of issue 5.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "ssa/config/config.h"
#include "ssa/dist/launch_environment.h"
#include "ssa/train/batch_source.h"

namespace ssa::train {

struct TrainerOptions {
  // "" = a fresh run (refused when the run folder already holds checkpoints), "auto" = continue
  // from the run folder's latest checkpoint when there is one, else a checkpoint or run folder.
  std::string resume;
  // Fault injection for tests: steps (0-based) whose loss is multiplied by NaN.
  std::function<bool(int64_t step)> poison_step;
  // Whether this process prints to the console (rank 0); the run folder's logs are written anyway.
  bool console = true;
  // The launcher's ranks (dist/launch_environment.h); none = one process without a process group.
  dist::LaunchEnvironment launch;
};

enum class TrainOutcome {
  kCompleted,  // train.steps reached
  kStopped,    // SIGTERM / SIGINT: stopped after a step with a checkpoint
  kDiverged,   // train.max_bad_steps non-finite steps in a row: stopped with a checkpoint
};

struct TrainSummary {
  TrainOutcome outcome = TrainOutcome::kCompleted;
  int64_t step = 0;  // steps done
  std::filesystem::path checkpoint;  // the checkpoint written at the end
};

// Runs training. Throws UsageError / ConfigError for bad input (a resume that does not fit, a
// batch geometry that does not divide), FormatError for damaged checkpoints.
TrainSummary train(const config::Config& config, BatchSource& data, const TrainerOptions& options);

// Exit code of a finished run (ssa::exit_code).
int exit_code_of(TrainOutcome outcome);

}  // namespace ssa::train
