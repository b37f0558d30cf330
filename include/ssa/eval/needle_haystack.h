// Needle in a haystack in the style of RULER's niah_single_2: one key-value needle, "One of the
// special magic numbers for {key} is: {7-digit number}.", hidden at a depth of a haystack of real
// text, then a question and an answer prefix; the model's greedy continuation is correct when its
// first number is exactly the needle's.
//
// The haystack is the given text split into sentences (each encoded once, with the whitespace
// before it) and read cyclically from a sentence chosen by the seed, so the prompt has exactly the
// requested number of tokens; the needle goes in at the sentence boundary nearest to `depth` of
// the haystack. Key (two words of the text) and number are drawn from (seed, length, depth), so a
// case is reproducible.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ssa::eval {

struct NeedleCase {
  std::vector<int64_t> prompt;  // exactly `length` tokens
  std::string key, answer;      // answer: the 7-digit number
  int64_t needle_position = 0;  // token index where the needle sentence starts
  int64_t length = 0;
  double depth = 0;
};

class NeedleHaystack {
 public:
  using EncodeFn = std::function<std::vector<int64_t>(const std::string&)>;

  // `text`: the haystack corpus (e.g. a plain-text book or documentation dump).
  NeedleHaystack(const std::string& text, EncodeFn encode);

  // depth in [0, 1]: 0 puts the needle before the haystack, 1 after it.
  NeedleCase make_case(int64_t length, double depth, uint64_t seed) const;

  // The longest sentence in tokens: the most the needle can be away from its ideal position.
  int64_t longest_sentence() const { return longest_sentence_; }

 private:
  EncodeFn encode_;
  std::vector<std::vector<int64_t>> sentences_;
  std::vector<std::string> words_;
  int64_t longest_sentence_ = 0;
};

// True when the first run of digits in `generated` is exactly `answer`.
bool needle_answer_correct(const std::string& generated, const std::string& answer);

}  // namespace ssa::eval
