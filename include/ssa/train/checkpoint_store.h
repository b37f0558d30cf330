// Checkpoints of a run: `run_dir/checkpoints/step-XXXXXXXX/` holding
//   config.json, model.safetensors   a model folder in HF layout (fp32 master weights), loadable
//                                    by `ssa score` and `ssa eval` as it is
//   optimizer.safetensors            AdamW moments ("exp_avg.<name>", "exp_avg_sq.<name>")
//   optimizer-rank-R-of-W.safetensors  instead, in a ZeRO run: each rank's share of the moments
//                                    (dist/optimizer_shards.h)
//   trainer_state.json               trainer_state.h
//   DONE                             written last; a folder without it is never loaded
// and `checkpoints/latest`, a one-line file naming the newest complete checkpoint. A checkpoint
// is built under `step-XXXXXXXX.tmp` and renamed into place, and `latest` is replaced
// atomically, so a crash at any point leaves the previous checkpoint and pointer intact.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ssa/compat/torch_compat.h"
#include "ssa/config/config.h"
#include "ssa/io/hf_config.h"
#include "ssa/model/tensor_file.h"
#include "ssa/train/trainer_state.h"

namespace ssa::train {

inline constexpr const char* kOptimizerFile = "optimizer.safetensors";
inline constexpr const char* kOptimizerShardPrefix = "optimizer-rank-";
inline constexpr const char* kTrainerStateFile = "trainer_state.json";
inline constexpr const char* kDoneFile = "DONE";
inline constexpr const char* kLatestFile = "latest";

struct CheckpointContents {
  config::ModelConfig model;
  config::AttentionConfig attention;
  model::NamedTensors weights;    // fp32, HF names
  model::NamedTensors optimizer;  // AdamW::state_tensors()
  TrainerState state;
};

struct LoadedCheckpoint {
  std::filesystem::path folder;
  io::HfModelConfig model_config;
  std::map<std::string, torch::Tensor> weights;
  std::map<std::string, torch::Tensor> optimizer;  // empty for sharded optimizer state (read with dist::read_optimizer_state)
  TrainerState state;
};

// "step-00001000".
std::string checkpoint_name(int64_t step);

// Whether `folder` holds a DONE marker (a complete checkpoint).
bool is_complete_checkpoint(const std::filesystem::path& folder);

// Reads a complete checkpoint. UsageError when the folder is missing or has no DONE (partial);
// FormatError when a file in it is corrupt or inconsistent.
LoadedCheckpoint read_checkpoint(const std::filesystem::path& folder);

class CheckpointStore {
 public:
  explicit CheckpointStore(const std::filesystem::path& run_dir);

  const std::filesystem::path& folder() const { return folder_; }
  std::filesystem::path step_folder(int64_t step) const { return folder_ / checkpoint_name(step); }

  // Writes the checkpoint of `contents.state.step` (replacing one of the same step) and points
  // `latest` at it. Returns its folder. No optimizer.safetensors when `contents.optimizer` is
  // empty; `alongside` (a data-parallel run: the other ranks' files) runs in the staging folder
  // before DONE is written.
  std::filesystem::path save(const CheckpointContents& contents,
                             const std::function<void(const std::filesystem::path& staging)>& alongside = {});

  // Steps of the complete checkpoints, ascending.
  std::vector<int64_t> complete_steps() const;

  // The checkpoint `latest` names, or the newest complete one when there is no pointer;
  // nullopt when the run has none. UsageError when `latest` names a partial or missing folder.
  std::optional<std::filesystem::path> latest() const;

  // Deletes complete checkpoints that are neither among the newest `keep_last` nor at a
  // multiple of `keep_every` (> 0). The newest is always kept. Returns the deleted folders.
  std::vector<std::filesystem::path> prune(int64_t keep_last, int64_t keep_every) const;

  // Removes `step-*.tmp` staging folders a crashed run left behind.
  void remove_stale_staging() const;

 private:
  std::filesystem::path folder_;
};

// The checkpoint to resume from for `--resume VALUE`: "auto" -> the run folder's latest (nullopt
// when it has none: a fresh start); otherwise VALUE is a checkpoint folder or a run folder (its
// latest). UsageError when VALUE names nothing resumable.
std::optional<std::filesystem::path> resolve_resume(const std::string& value, const std::filesystem::path& run_dir);

}  // namespace ssa::train
