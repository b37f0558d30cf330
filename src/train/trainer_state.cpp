#include "ssa/train/trainer_state.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <fmt/format.h>

#include <mutex>

#include "ssa/compat/torch_compat.h"
#include "ssa/util/error.h"

namespace ssa::train {
namespace {

std::string to_hex(const torch::Tensor& bytes) {
  const auto cpu = bytes.contiguous().to(torch::kCPU);
  const auto* data = cpu.data_ptr<uint8_t>();
  std::string out;
  out.reserve(static_cast<size_t>(cpu.numel()) * 2);
  static const char digits[] = "0123456789abcdef";
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 15]);
  }
  return out;
}

torch::Tensor from_hex(const std::string& hex, const std::string& what) {
  if (hex.size() % 2 != 0) throw FormatError(fmt::format("{}: odd number of hex digits", what));
  auto bytes = torch::empty({static_cast<int64_t>(hex.size() / 2)}, torch::kUInt8);
  auto* data = bytes.data_ptr<uint8_t>();
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw FormatError(fmt::format("{}: '{}' is not a hex digit", what, c));
  };
  for (size_t i = 0; i < hex.size() / 2; ++i) data[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return bytes;
}

std::string generator_state(at::Generator generator) {  // a handle: copies share the generator
  std::lock_guard<std::mutex> lock(generator.mutex());
  return to_hex(generator.get_state());
}

void set_generator_state(at::Generator generator, const std::string& hex, const std::string& what) {
  auto bytes = from_hex(hex, what);
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(bytes);
}

template <class T>
T get(const nlohmann::json& json, const char* key, const std::string& origin) {
  if (!json.is_object() || !json.contains(key)) throw FormatError(fmt::format("{}: key '{}' is missing", origin, key));
  try {
    return json.at(key).get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("{}: key '{}' has the wrong type ({})", origin, key, e.what()));
  }
}

}  // namespace

nlohmann::json to_json(const TrainerState& s) {
  return {{"format", TrainerState::kFormat},
          {"step", s.step},
          {"tokens_seen", s.tokens_seen},
          {"micro_batches", s.micro_batches},
          {"optimizer_updates", s.optimizer_updates},
          {"skipped_steps", s.skipped_steps},
          {"bad_steps_in_row", s.bad_steps_in_row},
          {"world_size", s.world_size},
          {"mode_sampler", {{"seed", s.mode_sampler_seed}, {"counter", s.micro_batches}}},
          {"lr", s.lr},
          {"schedule", s.schedule},
          {"data", s.data},
          {"data_fingerprint", s.data_fingerprint},
          {"rng", {{"torch_cpu", s.torch_cpu_rng}, {"cuda", s.cuda_rng}}},
          {"config_hash", s.config_hash},
          {"config", s.config_yaml},
          {"init_from", s.init_from}};
}

TrainerState trainer_state_from_json(const nlohmann::json& json, const std::string& origin) {
  TrainerState s;
  const int format = get<int>(json, "format", origin);
  if (format != TrainerState::kFormat) {
    throw FormatError(fmt::format("{}: format {} is not the supported {}", origin, format, TrainerState::kFormat));
  }
  s.step = get<int64_t>(json, "step", origin);
  s.tokens_seen = get<int64_t>(json, "tokens_seen", origin);
  s.micro_batches = get<int64_t>(json, "micro_batches", origin);
  s.optimizer_updates = get<int64_t>(json, "optimizer_updates", origin);
  s.skipped_steps = get<int64_t>(json, "skipped_steps", origin);
  s.bad_steps_in_row = get<int64_t>(json, "bad_steps_in_row", origin);
  s.world_size = get<int64_t>(json, "world_size", origin);
  s.mode_sampler_seed = get<uint64_t>(get<nlohmann::json>(json, "mode_sampler", origin), "seed", origin);
  s.lr = get<double>(json, "lr", origin);
  s.schedule = get<nlohmann::json>(json, "schedule", origin);
  s.data = get<nlohmann::json>(json, "data", origin);
  s.data_fingerprint = get<std::string>(json, "data_fingerprint", origin);
  const auto rng = get<nlohmann::json>(json, "rng", origin);
  s.torch_cpu_rng = get<std::string>(rng, "torch_cpu", origin);
  s.cuda_rng = get<std::vector<std::string>>(rng, "cuda", origin);
  s.config_hash = get<std::string>(json, "config_hash", origin);
  s.config_yaml = get<std::string>(json, "config", origin);
  // States written before train.init_from existed have no key: those runs started from random weights.
  if (json.contains("init_from")) s.init_from = get<std::string>(json, "init_from", origin);
  if (s.step < 0 || s.micro_batches < 0 || s.optimizer_updates < 0 || s.optimizer_updates > s.step) {
    throw FormatError(fmt::format("{}: inconsistent step counters", origin));
  }
  return s;
}

void capture_torch_rng(TrainerState& state) {
  state.torch_cpu_rng = generator_state(at::detail::getDefaultCPUGenerator());
  state.cuda_rng.clear();
  if (!at::hasCUDA()) return;
  const int64_t devices = static_cast<int64_t>(torch::cuda::device_count());
  for (int64_t d = 0; d < devices; ++d) {
    state.cuda_rng.push_back(
        generator_state(at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(d)))));
  }
}

void restore_torch_rng(const TrainerState& state) {
  set_generator_state(at::detail::getDefaultCPUGenerator(), state.torch_cpu_rng, "trainer_state.json rng.torch_cpu");
  if (!at::hasCUDA()) return;
  const int64_t devices = static_cast<int64_t>(torch::cuda::device_count());
  for (int64_t d = 0; d < devices && d < static_cast<int64_t>(state.cuda_rng.size()); ++d) {
    set_generator_state(at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(d))),
                        state.cuda_rng[d], "trainer_state.json rng.cuda");
  }
}

}  // namespace ssa::train
