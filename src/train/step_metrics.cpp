#include "ssa/train/step_metrics.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <sstream>

#include "ssa/io/atomic_file.h"
#include "ssa/util/error.h"

namespace ssa::train {
namespace {

// JSON has no NaN or infinity: non-finite values (a skipped step's loss) are written as null.
nlohmann::json number(double value) { return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(); }

std::string thousands(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return value < 0 ? "-" + out : out;
}

}  // namespace

std::string mode_summary(const std::string& modes) {
  if (modes.empty()) return "none";
  if (modes.find_first_not_of('F') == std::string::npos) return "full";
  if (modes.find_first_not_of('S') == std::string::npos) return "sparse";
  return "mixed";
}

nlohmann::json to_json(const StepMetrics& m) {
  nlohmann::json j = {{"step", m.step},
                      {"loss", number(m.loss)},
                      {"ce", number(m.ce)},
                      {"align", number(m.align)},
                      {"mode", mode_summary(m.modes)},
                      {"modes", m.modes},
                      {"grad_norm", number(m.grad_norm)},
                      {"lr", m.lr},
                      {"tokens", m.tokens},
                      {"tokens_per_s", number(m.tokens_per_s)},
                      {"mfu", m.mfu ? number(*m.mfu) : nlohmann::json()},
                      {"peak_mem_bytes", m.peak_memory_bytes},
                      {"data_wait", number(m.data_wait_share)},
                      {"comm", m.communication_share ? number(*m.communication_share) : nlohmann::json()},
                      {"step_s", number(m.step_seconds)},
                      {"skipped", m.skipped},
                      {"skipped_total", m.skipped_total}};
  for (const auto& [key, value] : m.validation) j[key] = number(value);
  return j;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 86400) return fmt::format("{}d{:02d}h", s / 86400, (s % 86400) / 3600);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::string console_line(const StepMetrics& m) {
  std::string line = fmt::format("step {}/{} | loss {:.4f} | ce {:.4f}", m.step, m.total_steps, m.loss, m.ce);
  if (m.has_align) line += fmt::format(" | align {:.4f}", m.align);
  line += fmt::format(" | mode {} | gnorm {:.3f} | lr {:.3e} | tok/s {}", mode_summary(m.modes), m.grad_norm, m.lr,
                      thousands(std::llround(m.tokens_per_s)));
  line += m.mfu ? fmt::format(" | mfu {:.1f}%", *m.mfu * 100.0) : std::string(" | mfu n/a");
  line += fmt::format(" | mem {:.2f}GiB | data {:.1f}%", m.peak_memory_bytes / double(1ll << 30),
                      m.data_wait_share * 100.0);
  if (m.communication_share) line += fmt::format(" | comm {:.1f}%", *m.communication_share * 100.0);
  line += fmt::format(" | eta {}", format_duration(m.eta_seconds));
  if (m.skipped) line += fmt::format(" | SKIPPED (non-finite; {} so far)", m.skipped_total);
  return line;
}

std::vector<std::pair<std::string, float>> tensorboard_scalars(const StepMetrics& m) {
  std::vector<std::pair<std::string, float>> out = {
      {"train/loss", static_cast<float>(m.loss)},
      {"train/ce", static_cast<float>(m.ce)},
      {"train/grad_norm", static_cast<float>(m.grad_norm)},
      {"train/lr", static_cast<float>(m.lr)},
      {"train/tokens", static_cast<float>(m.tokens)},
      {"train/tokens_per_s", static_cast<float>(m.tokens_per_s)},
      {"train/full_share", static_cast<float>(
                               m.modes.empty() ? 0.0
                                               : static_cast<double>(std::count(m.modes.begin(), m.modes.end(), 'F')) /
                                                     static_cast<double>(m.modes.size()))},
      {"train/peak_mem_gib", static_cast<float>(m.peak_memory_bytes / double(1ll << 30))},
      {"train/data_wait", static_cast<float>(m.data_wait_share)},
  };
  if (m.communication_share) out.emplace_back("train/comm", static_cast<float>(*m.communication_share));
  if (m.has_align) out.emplace_back("train/align", static_cast<float>(m.align));
  if (m.mfu) out.emplace_back("train/mfu", static_cast<float>(*m.mfu));
  for (const auto& [key, value] : m.validation) {
    std::string tag = key.rfind("val_", 0) == 0 ? "val/" + key.substr(4) : key;
    out.emplace_back(tag, static_cast<float>(value));
  }
  return out;
}

MetricsFile::MetricsFile(const std::filesystem::path& path, std::optional<int64_t> resume_step) : path_(path) {
  if (resume_step && std::filesystem::exists(path)) {
    std::istringstream in(io::read_file(path));
    std::string kept;
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      try {
        const auto j = nlohmann::json::parse(line);
        if (j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() > *resume_step) continue;
      } catch (const nlohmann::json::parse_error&) {
        continue;  // a line torn by a crash
      }
      kept += line + "\n";
    }
    io::write_file_atomic(path, kept);
  }
  out_.open(path, std::ios::app);
  if (!out_) throw UsageError(fmt::format("cannot open {} for writing", path.string()));
}

void MetricsFile::write(const nlohmann::json& line) {
  out_ << line.dump() << "\n";
  out_.flush();
  if (!out_) throw std::runtime_error(fmt::format("write {} failed", path_.string()));
}

}  // namespace ssa::train
