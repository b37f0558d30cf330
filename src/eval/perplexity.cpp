#include "ssa/eval/perplexity.h"

#include <cmath>

#include "ssa/eval/rolling_windows.h"
#include "ssa/train/linear_cross_entropy.h"
#include "ssa/train/micro_batch.h"
#include "ssa/util/error.h"

namespace ssa::eval {
namespace {

double ratio_exp(double nll, int64_t count) { return count > 0 ? std::exp(nll / static_cast<double>(count)) : NAN; }

// Length of a whitespace character starting at text[i] (0 if none), per Python's str.isspace().
size_t whitespace_length(std::string_view text, size_t i) {
  const auto byte = [&](size_t j) { return j < text.size() ? static_cast<unsigned char>(text[j]) : 0u; };
  const unsigned c = byte(i);
  if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
  if (c == 0xc2 && (byte(i + 1) == 0x85 || byte(i + 1) == 0xa0)) return 2;
  if (c == 0xe1 && byte(i + 1) == 0x9a && byte(i + 2) == 0x80) return 3;  // U+1680
  if (c == 0xe2 && byte(i + 1) == 0x80) {
    const unsigned d = byte(i + 2);
    if (d <= 0x8a || d == 0xa8 || d == 0xa9 || d == 0xaf) return 3;  // U+2000-200A, 2028, 2029, 202F
  }
  if (c == 0xe2 && byte(i + 1) == 0x81 && byte(i + 2) == 0x9f) return 3;  // U+205F
  if (c == 0xe3 && byte(i + 1) == 0x80 && byte(i + 2) == 0x80) return 3;  // U+3000
  return 0;
}

}  // namespace

void PerplexityTotals::add(const PerplexityTotals& o) {
  nll += o.nll;
  tokens += o.tokens;
  words += o.words;
  bytes += o.bytes;
}
double PerplexityTotals::token_perplexity() const { return ratio_exp(nll, tokens); }
double PerplexityTotals::word_perplexity() const { return ratio_exp(nll, words); }
double PerplexityTotals::byte_perplexity() const { return ratio_exp(nll, bytes); }
double PerplexityTotals::bits_per_byte() const { return bytes > 0 ? nll / static_cast<double>(bytes) / std::log(2.0) : NAN; }

int64_t count_words(std::string_view text) {
  int64_t pieces = 1;
  size_t i = 0;
  while (i < text.size()) {
    size_t n = whitespace_length(text, i);
    if (n == 0) {
      ++i;
      continue;
    }
    ++pieces;  // one split per maximal run of whitespace
    while (n > 0) {
      i += n;
      n = whitespace_length(text, i);
    }
  }
  return pieces;
}

double rolling_nll(model::LlamaForCausalLM& model, const std::vector<int64_t>& tokens, int64_t prefix_token,
                   int64_t max_length, int64_t stride, const model::ForwardOptions& options) {
  torch::NoGradGuard no_grad;
  const auto device = model->output_weight().device();
  std::vector<int64_t> extended{prefix_token};
  extended.insert(extended.end(), tokens.begin(), tokens.end());
  const auto all = torch::tensor(extended, torch::kInt64);
  double nll = 0;
  for (const auto& w : rolling_windows(static_cast<int64_t>(tokens.size()), max_length, stride)) {
    auto input = all.narrow(0, w.input_begin, w.input_length()).unsqueeze(0).to(device);
    auto hidden = model->forward(input, options).hidden[0];
    const int64_t first = w.target_begin - w.input_begin, count = w.target_end - w.target_begin;
    auto targets = all.narrow(0, w.target_begin + 1, count).to(device);
    nll += train::linear_cross_entropy_sum(hidden.narrow(0, first, count), model->output_weight(), targets,
                                           train::MicroBatch::kIgnoreTarget)
               .item<double>();
  }
  return nll;
}

PerplexityTotals text_perplexity(model::LlamaForCausalLM& model, const std::string& text,
                                 const std::vector<int64_t>& tokens, int64_t prefix_token, int64_t max_length,
                                 int64_t stride, const model::ForwardOptions& options) {
  PerplexityTotals t;
  t.nll = rolling_nll(model, tokens, prefix_token, max_length, stride, options);
  t.tokens = static_cast<int64_t>(tokens.size());
  t.words = count_words(text);
  t.bytes = static_cast<int64_t>(text.size());
  return t;
}

}  // namespace ssa::eval
