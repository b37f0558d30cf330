#include "ssa/train/trainer.h"

#include <chrono>
#include <fmt/format.h>
#include <optional>
#include <spdlog/spdlog.h>

#include "ssa/config/loader.h"
#include "ssa/dist/checkpoint_sync.h"
#include "ssa/dist/optimizer_shards.h"
#include "ssa/dist/process_group.h"
#include "ssa/dist/validation_reduction.h"
#include "ssa/io/atomic_file.h"
#include "ssa/io/safetensors.h"
#include "ssa/model/initial_weights.h"
#include "ssa/model/llama.h"
#include "ssa/train/checkpoint_store.h"
#include "ssa/train/device_choice.h"
#include "ssa/train/device_info.h"
#include "ssa/train/lr_schedule.h"
#include "ssa/train/model_flops.h"
#include "ssa/train/progress_bar.h"
#include "ssa/train/resume_check.h"
#include "ssa/train/run_log.h"
#include "ssa/train/step_metrics.h"
#include "ssa/train/stop_signal.h"
#include "ssa/train/tensorboard_writer.h"
#include "ssa/train/train_step.h"
#include "ssa/train/validation.h"
#include "ssa/util/error.h"

namespace ssa::train {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Micro-batches per rank per optimizer step.
int64_t accumulation_steps(const config::TrainConfig& t, int64_t world) {
  const int64_t sequences = t.sequences_per_step();
  const int64_t per_forward = t.micro_batch_size * world;
  if (sequences % per_forward != 0) {
    throw ConfigError(fmt::format("config key 'train.global_batch_size': {} sequences per step are not a multiple of "
                                  "train.micro_batch_size ({}) x {} rank(s)",
                                  sequences, t.micro_batch_size, world));
  }
  return sequences / per_forward;
}

}  // namespace

int exit_code_of(TrainOutcome outcome) {
  switch (outcome) {
    case TrainOutcome::kCompleted: return exit_code::kOk;
    case TrainOutcome::kStopped: return exit_code::kStopped;
    case TrainOutcome::kDiverged: return exit_code::kDiverged;
  }
  return exit_code::kFailure;
}

TrainSummary train(const config::Config& config, BatchSource& data, const TrainerOptions& options) {
  const auto& tc = config.train;
  const fs::path run_dir = tc.run_dir;
  const int64_t rank = options.launch.rank;
  fs::create_directories(run_dir);
  RunLog log(run_dir / (rank == 0 ? std::string("train.log") : fmt::format("train.rank-{}.log", rank)),
             options.console);
  CheckpointStore store(run_dir);
  if (rank == 0) store.remove_stale_staging();

  std::optional<fs::path> resume_from;
  if (options.resume.empty()) {
    if (!store.complete_steps().empty() || fs::exists(store.folder() / kLatestFile)) {
      throw UsageError(fmt::format("{} already holds checkpoints: continue it with --resume auto, or choose another "
                                   "train.run_dir",
                                   run_dir.string()));
    }
  } else {
    resume_from = resolve_resume(options.resume, run_dir);
    if (!resume_from) spdlog::info("--resume {}: no checkpoint in {}, starting a fresh run", options.resume, run_dir.string());
  }

  const int64_t world = options.launch.world_size;
  const int64_t accumulation = accumulation_steps(tc, world);
  const torch::Device device = pick_device(tc.device, options.launch.local_rank);
  std::unique_ptr<dist::ProcessGroup> group;
  if (options.launch.distributed()) {
    group = std::make_unique<dist::ProcessGroup>(options.launch, config.dist, device);
    spdlog::info("data parallel over {} ranks ({}, {} backend), zero {}, {} gradient reduction", world,
                 options.launch.launcher, group->backend_name(), config.dist.zero, config.dist.reduce_dtype);
  }
  const torch::ScalarType compute_dtype = pick_precision(tc.precision, device);
  torch::manual_seed(static_cast<uint64_t>(tc.seed));

  model::LlamaForCausalLM model(config.model);
  // train.init_from (--init-from) gives the weights of a fresh run only: a resumed run continues
  // from its own checkpoint, with the source recorded in its trainer state.
  if (!tc.init_from.empty() && !resume_from) {
    model::load_initial_weights(model, tc.init_from);
    spdlog::info("initial weights from {}; optimizer, schedule and data position start fresh", tc.init_from);
  } else {
    model->initialize(static_cast<uint64_t>(tc.seed));
    if (!tc.init_from.empty()) spdlog::info("train.init_from ignored: the run resumes from its own checkpoint");
  }
  model->to(device);
  TrainStep stepper(config, model, compute_dtype, group.get());
  const LrSchedule schedule(config.schedule, config.optim.lr, tc.steps);

  TrainerState state;
  state.world_size = world;
  state.mode_sampler_seed = static_cast<uint64_t>(tc.seed);
  state.init_from = tc.init_from;
  if (resume_from) {
    const auto checkpoint = read_checkpoint(*resume_from);
    const auto changes = check_resume(checkpoint.state.config_yaml, config, checkpoint.state.data_fingerprint,
                                      data.fingerprint(), resume_from->string());
    stepper.weights().load(checkpoint.weights, (*resume_from / io::kSingleWeightsFile).string());
    stepper.optimizer().load_state(
        dist::read_optimizer_state(*resume_from, checkpoint.optimizer, stepper.optimizer_pieces()),
        checkpoint.state.optimizer_updates, resume_from->string());
    data.restore(checkpoint.state.data);
    restore_torch_rng(checkpoint.state);
    state = checkpoint.state;
    state.world_size = world;
    state.mode_sampler_seed = static_cast<uint64_t>(tc.seed);
    spdlog::info("resuming from {} at step {} ({} tokens seen)", resume_from->string(), state.step, state.tokens_seen);
    for (const auto& change : changes) {
      spdlog::info("resume: {} changed from {} to {}", change.key, change.saved, change.now);
    }
  }
  if (rank == 0) io::write_file_atomic(run_dir / "config.yaml", config::to_yaml(config));

  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  const std::string device_label = device_name(device);
  const double flops_per_token = training_flops_per_token(config);
  const std::optional<double> peak_flops = device.is_cuda() ? peak_bf16_flops(device_label) : std::nullopt;
  spdlog::info("train: {:.2f}M parameters, method {}, device {} ({}), {} steps of {} x {} tokens ({} micro-batch(es) "
               "of {} per step), lr {} {} (warmup {} steps), run folder {}",
               parameters / 1e6, config.ssa.method, device_label, c10::toString(compute_dtype), tc.steps,
               tc.sequences_per_step(), tc.seq_len, accumulation, tc.micro_batch_size, config.optim.lr,
               config.schedule.type, schedule.warmup_steps(), run_dir.string());

  std::optional<MetricsFile> metrics;
  if (rank == 0) metrics.emplace(run_dir / "metrics.jsonl", state.step);
  std::unique_ptr<TensorBoardWriter> tensorboard;
  if (config.log.tensorboard && rank == 0) tensorboard = std::make_unique<TensorBoardWriter>(run_dir / "tb");
  StopSignal stop;
  ProgressBar bar;

  TrainSummary summary;
  int64_t saved_step = resume_from ? state.step : -1;
  summary.checkpoint = resume_from ? *resume_from : fs::path();
  const auto save = [&](const char* why) {
    capture_torch_rng(state);
    state.data = data.state();
    state.data_fingerprint = data.fingerprint();
    state.config_hash = config::config_hash(config);
    state.config_yaml = config::to_yaml(config);
    state.schedule = {{"type", config.schedule.type},
                      {"peak_lr", config.optim.lr},
                      {"warmup_steps", schedule.warmup_steps()},
                      {"total_steps", schedule.total_steps()}};
    // Rank 0 writes the model and the whole optimizer state; under ZeRO each rank its shard.
    const bool sharded = group && config.dist.zero > 0;
    CheckpointContents contents{config.model, config.attention, {}, {}, state};
    if (rank == 0) {
      for (const auto& [name, tensor] : stepper.weights().masters()) {
        contents.weights.emplace_back(name, tensor.detach().to(torch::kCPU));
      }
      if (!sharded) contents.optimizer = stepper.optimizer().state_tensors();
    }
    bar.clear();
    if (group) {
      summary.checkpoint = dist::save_checkpoint(*group, store, contents, [&](const fs::path& folder) {
        if (sharded) {
          dist::write_optimizer_shard(folder, rank, world, stepper.optimizer().state_tensors(),
                                      stepper.optimizer_pieces(), state.optimizer_updates);
        }
      });
    } else {
      summary.checkpoint = store.save(contents);
    }
    saved_step = state.step;
    spdlog::info("checkpoint {} ({})", summary.checkpoint.string(), why);
    if (rank != 0) return;
    for (const auto& removed : store.prune(config.checkpoint.keep_last, config.checkpoint.keep_every)) {
      spdlog::info("removed old checkpoint {}", removed.string());
    }
  };
  const auto finish = [&](TrainOutcome outcome, const char* why) {
    if (saved_step != state.step) save(why);
    bar.clear();
    summary.outcome = outcome;
    summary.step = state.step;
    return summary;
  };

  if (state.step >= tc.steps) {
    spdlog::info("step {} already reaches train.steps = {}: nothing to train", state.step, tc.steps);
    return finish(TrainOutcome::kCompleted, "end of run");
  }

  double timed_seconds = 0;
  int64_t timed_steps = 0;
  bool warned_no_validation = false;
  while (state.step < tc.steps) {
    const auto start = Clock::now();
    auto batches = data.next_step(accumulation, tc.micro_batch_size);
    const auto loaded = Clock::now();
    int64_t step_targets = data.step_target_tokens(batches);
    if (group) step_targets = static_cast<int64_t>(group->sum({static_cast<double>(step_targets)}, "token count")[0]);
    const StepTotals totals{step_targets, accumulation * world};
    for (auto& batch : batches) batch = batch.to(device);
    const double lr = schedule.at(state.step);
    const bool poison = options.poison_step && options.poison_step(state.step);
    const StepResult result = stepper.run(batches, totals, static_cast<uint64_t>(state.micro_batches), lr, poison);
    synchronize(device);
    const auto end = Clock::now();

    state.step += 1;
    state.micro_batches += accumulation;
    state.tokens_seen += result.input_tokens * world;
    state.optimizer_updates = stepper.optimizer().steps();
    state.lr = lr;
    if (result.skipped) {
      state.skipped_steps += 1;
      state.bad_steps_in_row += 1;
    } else {
      state.bad_steps_in_row = 0;
    }

    const double step_seconds = seconds_between(start, end);
    // The first step of a process includes one-off costs (allocator warm-up, kernel selection).
    if (timed_steps > 0) timed_seconds += step_seconds;
    ++timed_steps;
    const double mean_step = timed_steps > 1 ? timed_seconds / static_cast<double>(timed_steps - 1) : step_seconds;

    StepMetrics m;
    m.step = state.step;
    m.total_steps = tc.steps;
    m.loss = result.loss;
    m.ce = result.ce;
    m.align = result.align;
    m.has_align = config.ssa.method == "ssa";
    m.modes = result.modes;
    m.grad_norm = result.grad_norm;
    m.lr = lr;
    m.tokens = state.tokens_seen;
    m.tokens_per_s = static_cast<double>(result.input_tokens * world) / step_seconds;
    if (peak_flops) m.mfu = flops_per_token * m.tokens_per_s / (*peak_flops * static_cast<double>(world));
    m.peak_memory_bytes = peak_memory_bytes(device);
    m.data_wait_share = seconds_between(start, loaded) / step_seconds;
    if (group) m.communication_share = result.communication_seconds / step_seconds;
    m.step_seconds = step_seconds;
    m.eta_seconds = mean_step * static_cast<double>(tc.steps - state.step);
    m.skipped = result.skipped;
    m.skipped_total = state.skipped_steps;
    if (config.eval.every > 0 && state.step % config.eval.every == 0) {
      const auto held_out = data.validation(config.eval.batches, tc.micro_batch_size);
      if (!held_out.empty()) m.validation = validate(model, held_out, stepper.forward_options(0));
      if (group) m.validation = dist::combine_validation(*group, m.validation);
      if (m.validation.empty() && !warned_no_validation) {
        spdlog::warn("eval.every is set but the data has no validation rows (data.validation_fraction or "
                     "data.validation_documents): validation skipped");
        warned_no_validation = true;
      }
    }

    if (metrics) metrics->write(to_json(m));
    if (tensorboard) tensorboard->add_scalars(m.step, tensorboard_scalars(m));
    if (result.skipped) {
      bar.clear();
      spdlog::warn("step {}: non-finite loss ({}) or gradient norm ({}): update skipped ({} in a row, {} in total)",
                   state.step, result.loss, result.grad_norm, state.bad_steps_in_row, state.skipped_steps);
    }
    if (state.step % config.log.every == 0 || state.step == tc.steps || state.step == 1) {
      bar.clear();
      spdlog::info("{}", console_line(m));
    }
    if (!m.validation.empty()) {
      bar.clear();
      spdlog::info("validation at step {}: full loss {:.4f} ppl {:.2f} | sparse loss {:.4f} ppl {:.2f} ({} tokens)",
                   state.step, m.validation["val_loss_full"], m.validation["val_ppl_full"],
                   m.validation["val_loss_sparse"], m.validation["val_ppl_sparse"],
                   static_cast<int64_t>(m.validation["val_tokens"]));
    }
    if (options.console) {
      bar.draw(state.step, tc.steps,
               fmt::format("step {}/{} loss {:.4f} eta {}", state.step, tc.steps, m.loss, format_duration(m.eta_seconds)));
    }

    if (state.bad_steps_in_row >= tc.max_bad_steps) {
      bar.clear();
      spdlog::error("{} steps in a row had a non-finite loss or gradient norm (train.max_bad_steps = {}): stopping with "
                    "a checkpoint of the last good weights",
                    state.bad_steps_in_row, tc.max_bad_steps);
      return finish(TrainOutcome::kDiverged, "diverged");
    }
    if (config.checkpoint.every > 0 && state.step % config.checkpoint.every == 0 && state.step < tc.steps) {
      save("periodic");
    }
    // A signal to any rank stops them all after the same step.
    if (group ? group->any(stop.requested(), "stop agreement") : stop.requested()) {
      bar.clear();
      spdlog::warn("{}: stopping after step {} with a checkpoint (a second signal exits at once)",
                   stop.requested() ? fmt::format("signal {} received", stop.signal_number())
                                    : std::string("another rank received a stop signal"),
                   state.step);
      return finish(TrainOutcome::kStopped, "stopped by signal");
    }
  }
  return finish(TrainOutcome::kCompleted, "end of run");
}

}  // namespace ssa::train
