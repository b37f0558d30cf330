// Perplexity as lm-eval's wikitext task reports it, and the model side of it: the summed negative
// log-likelihood of documents scored through rolling windows (rolling_windows.h).
//   token_perplexity = exp(nll / tokens)
//   word_perplexity  = exp(nll / words)     words as lm-eval counts them: len(re.split(r"\s+", text))
//   byte_perplexity  = exp(nll / bytes)     bytes of the UTF-8 text
//   bits_per_byte    = nll / bytes / ln 2
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ssa/compat/torch_compat.h"
#include "ssa/model/llama.h"

namespace ssa::eval {

struct PerplexityTotals {
  double nll = 0;  // natural log, summed over all predicted tokens
  int64_t tokens = 0, words = 0, bytes = 0;

  void add(const PerplexityTotals& other);
  double token_perplexity() const;
  double word_perplexity() const;
  double byte_perplexity() const;
  double bits_per_byte() const;
};

// Python's len(re.split(r"\s+", text)): the pieces between runs of whitespace, counting the empty
// pieces before leading and after trailing whitespace (as lm-eval does). Whitespace is ASCII
// whitespace plus the Unicode spaces U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
// U+202F, U+205F and U+3000, as Python's str \s.
int64_t count_words(std::string_view text);

// Summed NLL of `tokens` read as [prefix] + tokens through rolling windows of `max_length` with
// `stride` (rolling_windows.h), under `options` (mode, sparse spec). Only the scored positions go
// through the output layer.
double rolling_nll(model::LlamaForCausalLM& model, const std::vector<int64_t>& tokens, int64_t prefix_token,
                   int64_t max_length, int64_t stride, const model::ForwardOptions& options);

// Perplexity of a text document (token, word and byte counts filled in).
PerplexityTotals text_perplexity(model::LlamaForCausalLM& model, const std::string& text,
                                 const std::vector<int64_t>& tokens, int64_t prefix_token, int64_t max_length,
                                 int64_t stride, const model::ForwardOptions& options);

}  // namespace ssa::eval
