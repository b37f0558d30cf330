#include <gtest/gtest.h>

#include <cmath>

#include "eval/tiny_model.h"
#include "ssa/eval/perplexity.h"
#include "ssa/eval/rolling_windows.h"
#include "ssa/util/error.h"

namespace ssa::eval {
namespace {

TEST(RollingWindows, CoverEveryTokenOnceWithTheRightContext) {
  for (int64_t n : {1, 5, 16, 17, 40, 123}) {
    for (auto [max_length, stride] : std::vector<std::pair<int64_t, int64_t>>{{16, 16}, {16, 5}, {7, 1}, {30, 30}}) {
      auto windows = rolling_windows(n, max_length, stride);
      std::vector<int> covered(n, 0);
      int64_t expected_begin = 0;
      for (const auto& w : windows) {
        EXPECT_EQ(w.target_begin, expected_begin);  // consecutive, in order
        expected_begin = w.target_end;
        EXPECT_LE(w.input_length(), max_length);
        EXPECT_LE(w.input_begin, w.target_begin);
        for (int64_t i = w.target_begin; i < w.target_end; ++i) {
          ++covered[i];
          // Token i sees the prefix and tokens 0..i-1 where they fit, else the last max_length.
          if (w.target_begin == 0) {
            EXPECT_EQ(w.context_length(i), i + 1);
          }
          EXPECT_LE(w.context_length(i), i + 1);
          EXPECT_LE(w.context_length(i), max_length);
          if (w.target_begin > 0) {
            EXPECT_GE(w.context_length(i), std::min(i + 1, max_length - stride + 1));
          }
        }
      }
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(covered[i], 1) << "token " << i;
    }
  }
  // lm-eval's windows for 10 tokens, max_length 4: targets [0,4) [4,8) [8,10); the last one reads
  // the 4 tokens that end before its last target ([prefix]+tokens indices 6..9).
  auto w = rolling_windows(10, 4, 4);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[1].input_begin, 4);
  EXPECT_EQ(w[2].input_begin, 6);
  EXPECT_EQ(w[2].target_begin, 8);
  EXPECT_THROW(rolling_windows(10, 4, 5), UsageError);
}

TEST(Perplexity, WordAndByteConversionsOnAHandComputedExample) {
  // "Hello  world\n foo " splits as ['Hello', 'world', 'foo', ''] in Python: 4 words, 18 bytes.
  const std::string text = "Hello  world\n foo ";
  EXPECT_EQ(count_words(text), 4);
  EXPECT_EQ(count_words(""), 1);
  EXPECT_EQ(count_words(" a"), 2);
  EXPECT_EQ(count_words("a\xc2\xa0z\xe3\x80\x80y"), 3);  // NBSP and ideographic space split
  EXPECT_EQ(count_words("caf\xc3\xa9 ok"), 2);         // é is not whitespace
  PerplexityTotals t;
  t.nll = 12.0;
  t.tokens = 6;
  t.words = count_words(text);
  t.bytes = static_cast<int64_t>(text.size());
  EXPECT_NEAR(t.token_perplexity(), std::exp(2.0), 1e-9);
  EXPECT_NEAR(t.word_perplexity(), std::exp(3.0), 1e-9);
  EXPECT_NEAR(t.byte_perplexity(), std::exp(12.0 / 18.0), 1e-9);
  EXPECT_NEAR(t.bits_per_byte(), 12.0 / 18.0 / std::log(2.0), 1e-12);
  PerplexityTotals sum = t;
  sum.add(t);
  EXPECT_NEAR(sum.word_perplexity(), t.word_perplexity(), 1e-9);
}

TEST(Perplexity, UniformLogitsGiveTheVocabularySize) {
  auto m = test::tiny_model(21, 151);
  {
    torch::NoGradGuard no_grad;
    m->model->norm->weight.zero_();  // final hidden states are 0, so every logit is 0
  }
  std::vector<int64_t> tokens;
  for (int i = 0; i < 90; ++i) tokens.push_back((i * 17) % 151);
  for (auto mode : {attention::Mode::kFull, attention::Mode::kSparse}) {
    model::ForwardOptions o;
    o.mode = mode;
    o.sparse.block_size = 8;
    o.sparse.topk = 2;
    auto t = text_perplexity(m, "a b c", tokens, 150, 32, 8, o);
    EXPECT_EQ(t.tokens, 90);
    EXPECT_NEAR(t.token_perplexity(), 151.0, 1e-3);
  }
}

TEST(Perplexity, RollingNllScoresEachTokenFromItsWindow) {
  auto m = test::tiny_model(22);
  std::vector<int64_t> tokens;
  for (int i = 0; i < 45; ++i) tokens.push_back((i * 29 + 3) % 97);
  model::ForwardOptions o;
  const int64_t prefix = 96, max_length = 16, stride = 5;
  const double nll = rolling_nll(m, tokens, prefix, max_length, stride, o);
  // Brute force: token i predicted by the last position of a forward over exactly its context.
  std::vector<int64_t> extended{prefix};
  extended.insert(extended.end(), tokens.begin(), tokens.end());
  double expected = 0;
  torch::NoGradGuard no_grad;
  for (const auto& w : rolling_windows(45, max_length, stride)) {
    for (int64_t i = w.target_begin; i < w.target_end; ++i) {
      std::vector<int64_t> context(extended.begin() + w.input_begin, extended.begin() + i + 1);
      auto hidden = m->forward(torch::tensor(context, torch::kInt64).unsqueeze(0), o).hidden[0];
      auto log_probs = torch::log_softmax(m->logits(hidden[hidden.size(0) - 1]), -1);
      expected -= log_probs[tokens[i]].item<double>();
    }
  }
  EXPECT_NEAR(nll, expected, 1e-3);
  // A longer context changes the result (the windows really limit what the model sees).
  EXPECT_GT(std::abs(rolling_nll(m, tokens, prefix, 45, 45, o) - nll), 1e-4);
}

}  // namespace
}  // namespace ssa::eval
