// The windows of lm-eval's rolling log-likelihood (get_rolling_token_windows with
// make_disjoint_window), generalised by a stride, which also gives PG19-style sliding-window
// perplexity. A document of N tokens is read as [prefix] + tokens; every token is a target exactly
// once. The first window predicts the first min(N, max_length) tokens; each later one predicts
// the next min(stride, rest) tokens and reads the max_length tokens that end just before its last
// target (fewer at the start of the document). stride == max_length is lm-eval's loglikelihood_
// rolling (context_len 1); stride 256 with max_length C is the sliding window of context C.
#pragma once

#include <cstdint>
#include <vector>

namespace ssa::eval {

struct TokenWindow {
  // Indices into [prefix] + tokens: the model reads [input_begin, target_end).
  int64_t input_begin = 0;
  // Document token indices predicted (scored) by this window: [target_begin, target_end). Token i is
  // predicted from the input position that holds extended index i (token i-1, or the prefix).
  int64_t target_begin = 0, target_end = 0;

  int64_t input_length() const { return target_end - input_begin; }
  // Tokens the model sees when predicting document token i of this window (the prefix counts).
  int64_t context_length(int64_t i) const { return i - input_begin + 1; }
};

std::vector<TokenWindow> rolling_windows(int64_t num_tokens, int64_t max_length, int64_t stride);

}  // namespace ssa::eval
