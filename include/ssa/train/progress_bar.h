// A one-line progress bar redrawn in place on a terminal (nothing when stdout is not a tty),
// cleared before other output so log lines never mix with it.
#pragma once

#include <cstdint>
#include <string>

namespace ssa::train {

class ProgressBar {
 public:
  ProgressBar();  // enabled when stdout is a terminal
  void draw(int64_t done, int64_t total, const std::string& suffix);
  void clear();

 private:
  bool enabled_;
  bool shown_ = false;
};

}  // namespace ssa::train
