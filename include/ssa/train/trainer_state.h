// trainer_state.json of a checkpoint: everything besides the weights and the optimizer moments
// that a resumed run needs to continue exactly where the saved one stood.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ssa::train {

struct TrainerState {
  static constexpr int kFormat = 1;

  int64_t step = 0;               // optimizer steps done (skipped ones included): the next step to run
  int64_t tokens_seen = 0;        // input tokens of all ranks trained on
  int64_t micro_batches = 0;      // mode sampler counter: global index of the next micro-batch slot
  int64_t optimizer_updates = 0;  // AdamW's t (steps minus skipped steps)
  int64_t skipped_steps = 0;      // non-finite steps skipped so far
  int64_t bad_steps_in_row = 0;
  int64_t world_size = 1;
  uint64_t mode_sampler_seed = 0;
  double lr = 0;  // the rate of the last step
  nlohmann::json schedule;  // type, peak, warmup and total steps in force when saved (for the resume log)
  nlohmann::json data;      // the data loader's state
  std::string data_fingerprint;
  std::string torch_cpu_rng;            // hex of LibTorch's default CPU generator state
  std::vector<std::string> cuda_rng;    // hex per visible CUDA device
  std::string config_hash;
  std::string config_yaml;  // the resolved configuration of the saved run
  std::string init_from;    // the model folder the run's initial weights came from ("" = random init)
};

nlohmann::json to_json(const TrainerState& state);
// FormatError naming `origin` on a missing key or wrong type.
TrainerState trainer_state_from_json(const nlohmann::json& json, const std::string& origin);

// LibTorch's default generators (CPU and every CUDA device) captured into / restored from the state.
void capture_torch_rng(TrainerState& state);
void restore_torch_rng(const TrainerState& state);

}  // namespace ssa::train
