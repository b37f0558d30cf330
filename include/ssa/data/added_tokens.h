// The added tokens of a tokenizer.json (special tokens such as <|begin_of_text|> and any other
// added vocabulary). They are found in the raw text before pre-tokenization and become one token
// each, as in transformers.js (@lenml/tokenizers).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ssa::data {

struct AddedToken {
  std::string content;
  uint32_t id = 0;
  bool special = false;
  bool lstrip = false;  // whitespace before the token is removed
  bool rstrip = false;  // whitespace after the token is removed
};

class AddedVocabulary {
 public:
  explicit AddedVocabulary(std::vector<AddedToken> tokens);

  struct Section {
    std::string_view text;
    const AddedToken* token;  // null for ordinary text
  };
  // Cuts `text` (valid UTF-8) into ordinary text and added tokens: scanning left to right, the
  // longest added token starting at each position wins. Then lstrip / rstrip trim JavaScript
  // whitespace off the neighbouring sections. Sections may be empty.
  void split(std::string_view text, std::vector<Section>& sections) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  // The added token spelled `content` (the last one, if several are), or null.
  const AddedToken* find(std::string_view content) const;

 private:
  struct Node {
    int32_t token = -1;  // index into tokens_ of the token ending here
    std::vector<std::pair<uint8_t, uint32_t>> children;
  };
  uint32_t child(uint32_t node, uint8_t byte) const;  // 0 when absent (the root is never a child)

  std::vector<AddedToken> tokens_;
  std::vector<Node> trie_;
  bool starts_token_[256] = {};
};

}  // namespace ssa::data
