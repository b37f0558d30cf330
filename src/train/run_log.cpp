#include "ssa/train/run_log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace ssa::train {

RunLog::RunLog(const std::filesystem::path& file, bool console) : previous_(spdlog::default_logger()) {
  std::vector<spdlog::sink_ptr> sinks;
  if (console) sinks.push_back(std::make_shared<spdlog::sinks::stdout_color_sink_mt>());
  sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file.string(), /*truncate=*/false));
  auto logger = std::make_shared<spdlog::logger>("train", sinks.begin(), sinks.end());
  logger->set_level(previous_ ? previous_->level() : spdlog::level::info);
  logger->flush_on(spdlog::level::info);  // a killed run keeps every line it logged
  spdlog::set_default_logger(logger);
}

RunLog::~RunLog() {
  spdlog::default_logger()->flush();
  if (previous_) spdlog::set_default_logger(previous_);
}

}  // namespace ssa::train
