#include "ssa/eval/needle_haystack.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>
#include <set>

#include "ssa/util/error.h"

namespace ssa::eval {
namespace {

// Pieces of text that end after '.', '!' or '?' followed by whitespace, or at a blank line; the
// whitespace between pieces stays at the front of the next one so that concatenating the pieces
// gives the text back.
std::vector<std::string> split_sentences(const std::string& text) {
  std::vector<std::string> pieces;
  size_t start = 0;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    const bool sentence_end = (text[i] == '.' || text[i] == '!' || text[i] == '?') && std::isspace(static_cast<unsigned char>(text[i + 1]));
    const bool paragraph_end = text[i] == '\n' && text[i + 1] == '\n';
    if ((sentence_end || paragraph_end) && i + 1 > start) {
      pieces.push_back(text.substr(start, i + 1 - start));
      start = i + 1;
    }
  }
  if (start < text.size()) pieces.push_back(text.substr(start));
  return pieces;
}

std::vector<int64_t> concat(std::initializer_list<const std::vector<int64_t>*> parts) {
  std::vector<int64_t> out;
  for (const auto* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

}  // namespace

NeedleHaystack::NeedleHaystack(const std::string& text, EncodeFn encode) : encode_(std::move(encode)) {
  for (const auto& piece : split_sentences(text)) {
    if (piece.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    auto ids = encode_(piece);
    if (ids.empty()) continue;
    longest_sentence_ = std::max<int64_t>(longest_sentence_, static_cast<int64_t>(ids.size()));
    sentences_.push_back(std::move(ids));
  }
  if (sentences_.empty()) throw UsageError("needle in a haystack: the haystack text is empty");
  std::set<std::string> words;
  std::string word;
  for (char c : text + " ") {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      if (word.size() >= 4 && word.size() <= 12) words.insert(word);
      word.clear();
    }
  }
  words_.assign(words.begin(), words.end());
  if (words_.size() < 2) throw UsageError("needle in a haystack: the haystack has too few words for needle keys");
}

NeedleCase NeedleHaystack::make_case(int64_t length, double depth, uint64_t seed) const {
  if (!(depth >= 0 && depth <= 1)) throw UsageError("needle depth must be in [0, 1]");
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(length),
                    static_cast<uint32_t>(std::llround(depth * 1e6))};
  std::mt19937_64 rng(seq);
  NeedleCase c;
  c.length = length;
  c.depth = depth;
  c.key = words_[rng() % words_.size()] + "-" + words_[rng() % words_.size()];
  c.answer = std::to_string(1000000 + rng() % 9000000);

  const auto intro = encode_(
      "A special magic number is hidden in the long text below. Remember it: you will be asked for it at the end.\n");
  const auto needle = encode_(" One of the special magic numbers for " + c.key + " is: " + c.answer + ".");
  const auto question = encode_("\nWhat is the special magic number for " + c.key +
                                " mentioned in the text above? The special magic number for " + c.key +
                                " mentioned in the text above is");
  const int64_t budget = length - static_cast<int64_t>(intro.size() + needle.size() + question.size());
  if (budget < 1) {
    throw UsageError("needle in a haystack: length " + std::to_string(length) + " leaves no room for the haystack");
  }
  // Whole sentences from a seeded start, the last one cut to fill the budget exactly.
  std::vector<int64_t> haystack;
  std::vector<int64_t> boundaries{0};
  for (size_t s = rng() % sentences_.size(); static_cast<int64_t>(haystack.size()) < budget; s = (s + 1) % sentences_.size()) {
    const auto& sentence = sentences_[s];
    const size_t take = std::min(sentence.size(), static_cast<size_t>(budget) - haystack.size());
    haystack.insert(haystack.end(), sentence.begin(), sentence.begin() + static_cast<std::ptrdiff_t>(take));
    boundaries.push_back(static_cast<int64_t>(haystack.size()));
  }
  const double target = depth * static_cast<double>(budget);
  int64_t insert_at = 0;
  for (int64_t b : boundaries) {
    if (std::abs(static_cast<double>(b) - target) < std::abs(static_cast<double>(insert_at) - target)) insert_at = b;
  }
  const std::vector<int64_t> before(haystack.begin(), haystack.begin() + insert_at);
  const std::vector<int64_t> after(haystack.begin() + insert_at, haystack.end());
  c.prompt = concat({&intro, &before, &needle, &after, &question});
  c.needle_position = static_cast<int64_t>(intro.size()) + insert_at;
  return c;
}

bool needle_answer_correct(const std::string& generated, const std::string& answer) {
  const auto begin = generated.find_first_of("0123456789");
  if (begin == std::string::npos) return false;
  const auto end = generated.find_first_not_of("0123456789", begin);
  return generated.substr(begin, end == std::string::npos ? std::string::npos : end - begin) == answer;
}

}  // namespace ssa::eval
