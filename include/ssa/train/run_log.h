// While a run lasts, spdlog's default logger writes to the console (when this rank prints) and
// appends to `run_dir/train.log`; the previous default logger comes back afterwards.
#pragma once

#include <filesystem>
#include <memory>

namespace spdlog {
class logger;
}

namespace ssa::train {

class RunLog {
 public:
  RunLog(const std::filesystem::path& file, bool console);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

 private:
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace ssa::train
