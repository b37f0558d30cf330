#include "ssa/train/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fmt/format.h>

namespace ssa::train {

ProgressBar::ProgressBar() : enabled_(::isatty(STDOUT_FILENO) == 1) {}

void ProgressBar::draw(int64_t done, int64_t total, const std::string& suffix) {
  if (!enabled_) return;
  constexpr int kWidth = 30;
  const double share = total > 0 ? std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0) : 0.0;
  const int filled = static_cast<int>(share * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  std::fputs(fmt::format("\r\033[K[{}] {:5.1f}% {}", bar, share * 100.0, suffix).c_str(), stdout);
  std::fflush(stdout);
  shown_ = true;
}

void ProgressBar::clear() {
  if (!enabled_ || !shown_) return;
  std::fputs("\r\033[K", stdout);
  std::fflush(stdout);
  shown_ = false;
}

}  // namespace ssa::train
