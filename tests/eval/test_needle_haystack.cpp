#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "ssa/eval/needle_haystack.h"
#include "ssa/util/error.h"

namespace ssa::eval {
namespace {

// One token per whitespace-separated word, ids from a fixed hash, so the test needs no tokenizer.
std::vector<int64_t> word_ids(const std::string& text) {
  std::vector<int64_t> ids;
  std::string word;
  for (char c : text + " ") {
    if (c == ' ' || c == '\n') {
      if (!word.empty()) ids.push_back(static_cast<int64_t>(std::hash<std::string>{}(word) % 100000));
      word.clear();
    } else {
      word += c;
    }
  }
  return ids;
}

std::string haystack_text() {
  std::string text;
  const char* sentences[] = {"The quick brown fox jumps over the lazy dog.", "Packages are built from source files.",
                             "Every maintainer reads the policy manual carefully before uploading.",
                             "Short one.", "Mirrors copy the archive several times each day!"};
  for (int i = 0; i < 40; ++i) text += std::string(sentences[i % 5]) + (i % 7 == 6 ? "\n\n" : " ");
  return text;
}

TEST(NeedleHaystack, DeterministicFromTheSeed) {
  NeedleHaystack h(haystack_text(), word_ids);
  auto a = h.make_case(300, 0.5, 42), b = h.make_case(300, 0.5, 42), c = h.make_case(300, 0.5, 43);
  EXPECT_EQ(a.prompt, b.prompt);
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.answer, b.answer);
  EXPECT_TRUE(a.answer != c.answer || a.key != c.key);
  EXPECT_EQ(a.answer.size(), 7u);
  EXPECT_NE(a.key.find('-'), std::string::npos);
}

TEST(NeedleHaystack, TheAnswerIsAtTheRequestedDepth) {
  NeedleHaystack h(haystack_text(), word_ids);
  for (int64_t length : {200, 400, 1000}) {  // 1000 tokens read the 400-word text cyclically
    for (double depth : {0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0}) {
      auto c = h.make_case(length, depth, 7);
      ASSERT_EQ(static_cast<int64_t>(c.prompt.size()), length);
      const auto needle = word_ids(" One of the special magic numbers for " + c.key + " is: " + c.answer + ".");
      ASSERT_TRUE(std::equal(needle.begin(), needle.end(), c.prompt.begin() + c.needle_position))
          << "length " << length << " depth " << depth;
      // The haystack lies between an intro of 22 words and a question of 29: the needle is within
      // one sentence of depth * haystack after the intro, so close to depth * length.
      const double intro = 22, question = static_cast<double>(word_ids("\nWhat is the special magic number for " + c.key +
                                                                       " mentioned in the text above? The special magic number for " +
                                                                       c.key + " mentioned in the text above is").size());
      const double haystack = static_cast<double>(length) - intro - question - static_cast<double>(needle.size());
      EXPECT_LE(std::abs(static_cast<double>(c.needle_position) - (intro + depth * haystack)),
                static_cast<double>(h.longest_sentence()) / 2 + 1)
          << "length " << length << " depth " << depth;
      EXPECT_LE(std::abs(static_cast<double>(c.needle_position) - depth * static_cast<double>(length)),
                intro + question + static_cast<double>(needle.size()) + h.longest_sentence());
    }
  }
  EXPECT_THROW(h.make_case(20, 0.5, 1), UsageError);
}

TEST(NeedleHaystack, ExactMatchOfTheFirstNumber) {
  EXPECT_TRUE(needle_answer_correct(" 1234567.", "1234567"));
  EXPECT_TRUE(needle_answer_correct(": 1234567 and 7654321", "1234567"));
  EXPECT_FALSE(needle_answer_correct(" 12345678", "1234567"));
  EXPECT_FALSE(needle_answer_correct(" 7654321 or 1234567", "1234567"));
  EXPECT_FALSE(needle_answer_correct(" none", "1234567"));
}

}  // namespace
}  // namespace ssa::eval
