#include "ssa/train/checkpoint_store.h"

#include <algorithm>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ssa/io/atomic_file.h"
#include "ssa/io/remove_tree.h"
#include "ssa/io/safetensors.h"
#include "ssa/util/error.h"

namespace ssa::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kPrefix = "step-";

// The step of a folder named step-XXXXXXXX (exactly digits after the prefix), or -1.
int64_t parse_step(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return -1;
  const std::string digits = name.substr(std::char_traits<char>::length(kPrefix));
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  return std::stoll(digits);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string checkpoint_name(int64_t step) { return fmt::format("{}{:08d}", kPrefix, step); }

bool is_complete_checkpoint(const fs::path& folder) { return fs::is_regular_file(folder / kDoneFile); }

LoadedCheckpoint read_checkpoint(const fs::path& folder) {
  if (!fs::is_directory(folder)) throw UsageError(fmt::format("checkpoint {} does not exist", folder.string()));
  if (!is_complete_checkpoint(folder)) {
    throw UsageError(fmt::format("checkpoint {} is incomplete (no {} marker): it was never finished and cannot be "
                                 "loaded",
                                 folder.string(), kDoneFile));
  }
  LoadedCheckpoint out;
  out.folder = folder;
  bool sharded_optimizer = false;
  for (const auto& entry : fs::directory_iterator(folder)) {
    sharded_optimizer = sharded_optimizer || entry.path().filename().string().rfind(kOptimizerShardPrefix, 0) == 0;
  }
  for (const char* name : {"config.json", io::kSingleWeightsFile, kOptimizerFile, kTrainerStateFile}) {
    if (name == std::string(kOptimizerFile) && sharded_optimizer) continue;
    if (!fs::is_regular_file(folder / name)) {
      throw FormatError(fmt::format("checkpoint {} is damaged: {} is missing", folder.string(), name));
    }
  }
  out.model_config = io::read_hf_config(folder / "config.json");
  out.weights = model::read_tensor_file(folder / io::kSingleWeightsFile);
  if (!sharded_optimizer) out.optimizer = model::read_tensor_file(folder / kOptimizerFile);
  const fs::path state_path = folder / kTrainerStateFile;
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(io::read_file(state_path));
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(fmt::format("{}: not valid JSON ({})", state_path.string(), e.what()));
  }
  out.state = trainer_state_from_json(json, state_path.string());
  const int64_t named_step = parse_step(folder.filename().string());
  if (named_step >= 0 && named_step != out.state.step) {
    throw FormatError(fmt::format("{}: step {} does not match the folder name", state_path.string(), out.state.step));
  }
  return out;
}

CheckpointStore::CheckpointStore(const fs::path& run_dir) : folder_(run_dir / "checkpoints") {}

fs::path CheckpointStore::save(const CheckpointContents& c, const std::function<void(const fs::path&)>& alongside) {
  fs::create_directories(folder_);
  const fs::path target = step_folder(c.state.step);
  const std::string config_json = io::to_hf_config(c.model, c.attention, "float32").dump(2) + "\n";
  const std::string state_json = to_json(c.state).dump(2) + "\n";
  io::write_directory_atomic(target, [&](const fs::path& staging) {
    io::write_file_atomic(staging / "config.json", config_json);
    model::write_tensor_file(staging / io::kSingleWeightsFile, c.weights, {{"format", "pt"}});
    if (!c.optimizer.empty()) {
      model::write_tensor_file(staging / kOptimizerFile, c.optimizer,
                               {{"optimizer", "adamw"}, {"updates", std::to_string(c.state.optimizer_updates)}});
    }
    io::write_file_atomic(staging / kTrainerStateFile, state_json);
    if (alongside) alongside(staging);
    io::write_file_atomic(staging / kDoneFile, fmt::format("step {}\n", c.state.step));
  });
  io::write_file_atomic(folder_ / kLatestFile, checkpoint_name(c.state.step) + "\n");
  return target;
}

std::vector<int64_t> CheckpointStore::complete_steps() const {
  std::vector<int64_t> steps;
  if (!fs::is_directory(folder_)) return steps;
  for (const auto& entry : fs::directory_iterator(folder_)) {
    const int64_t step = parse_step(entry.path().filename().string());
    if (step >= 0 && entry.is_directory() && is_complete_checkpoint(entry.path())) steps.push_back(step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::optional<fs::path> CheckpointStore::latest() const {
  const fs::path pointer = folder_ / kLatestFile;
  if (fs::exists(pointer)) {
    const std::string name = trim(io::read_file(pointer));
    if (parse_step(name) < 0) {
      throw FormatError(fmt::format("{}: '{}' is not a checkpoint name", pointer.string(), name));
    }
    const fs::path target = folder_ / name;
    if (!is_complete_checkpoint(target)) {
      throw UsageError(fmt::format("{} names {}, which is missing or incomplete; resume from an explicit "
                                   "checkpoint with --resume PATH",
                                   pointer.string(), target.string()));
    }
    return target;
  }
  const auto steps = complete_steps();
  if (steps.empty()) return std::nullopt;
  return step_folder(steps.back());
}

std::vector<fs::path> CheckpointStore::prune(int64_t keep_last, int64_t keep_every) const {
  const auto steps = complete_steps();
  std::vector<fs::path> removed;
  const int64_t count = static_cast<int64_t>(steps.size());
  const int64_t keep_newest = std::max<int64_t>(1, keep_last);
  for (int64_t i = 0; i + keep_newest < count; ++i) {
    const int64_t step = steps[i];
    if (keep_every > 0 && step % keep_every == 0) continue;
    const fs::path folder = step_folder(step);
    io::remove_tree(folder);
    removed.push_back(folder);
  }
  return removed;
}

void CheckpointStore::remove_stale_staging() const {
  if (!fs::is_directory(folder_)) return;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(folder_)) {
    const std::string name = entry.path().filename().string();
    const auto dot = name.rfind(".tmp");
    if (dot != std::string::npos && dot + 4 == name.size() && parse_step(name.substr(0, dot)) >= 0) {
      stale.push_back(entry.path());
    }
  }
  for (const auto& path : stale) io::remove_tree(path);
}

std::optional<fs::path> resolve_resume(const std::string& value, const fs::path& run_dir) {
  if (value == "auto") return CheckpointStore(run_dir).latest();
  const fs::path path(value);
  if (!fs::exists(path)) throw UsageError(fmt::format("--resume {}: no such checkpoint or run folder", value));
  if (fs::is_regular_file(path / kTrainerStateFile) || fs::is_regular_file(path / kDoneFile)) return path;
  if (fs::is_directory(path / "checkpoints")) {
    auto latest = CheckpointStore(path).latest();
    if (!latest) throw UsageError(fmt::format("--resume {}: the run folder has no complete checkpoint", value));
    return latest;
  }
  throw UsageError(fmt::format("--resume {}: neither a checkpoint folder (with {}) nor a run folder", value,
                               kTrainerStateFile));
}

}  // namespace ssa::train
