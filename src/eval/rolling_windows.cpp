#include "ssa/eval/rolling_windows.h"

#include <algorithm>
#include <string>

#include "ssa/util/error.h"

namespace ssa::eval {

std::vector<TokenWindow> rolling_windows(int64_t num_tokens, int64_t max_length, int64_t stride) {
  if (max_length < 1) throw UsageError("perplexity: max_length must be at least 1");
  if (stride < 1 || stride > max_length) {
    throw UsageError("perplexity: stride must be in [1, max_length], got " + std::to_string(stride));
  }
  std::vector<TokenWindow> windows;
  int64_t predicted = 0;
  while (predicted < num_tokens) {
    const int64_t count = std::min(num_tokens - predicted, predicted == 0 ? max_length : stride);
    TokenWindow w;
    w.target_begin = predicted;
    w.target_end = predicted + count;
    w.input_begin = std::max<int64_t>(0, w.target_end - max_length);
    windows.push_back(w);
    predicted += count;
  }
  return windows;
}

}  // namespace ssa::eval
