#include "ssa/data/added_tokens.h"

#include "ssa/data/utf8.h"

namespace ssa::data {

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)), trie_(1) {
  for (size_t index = 0; index < tokens_.size(); ++index) {
    const std::string& content = tokens_[index].content;
    if (content.empty()) continue;  // matches nothing, as in the reference
    starts_token_[static_cast<uint8_t>(content[0])] = true;
    uint32_t node = 0;
    for (const char c : content) {
      const auto byte = static_cast<uint8_t>(c);
      uint32_t next = child(node, byte);
      if (next == 0) {
        next = static_cast<uint32_t>(trie_.size());
        trie_[node].children.emplace_back(byte, next);
        trie_.emplace_back();
      }
      node = next;
    }
    trie_[node].token = static_cast<int32_t>(index);
  }
}

uint32_t AddedVocabulary::child(uint32_t node, uint8_t byte) const {
  for (const auto& [b, next] : trie_[node].children) {
    if (b == byte) return next;
  }
  return 0;
}

const AddedToken* AddedVocabulary::find(std::string_view content) const {
  uint32_t node = 0;
  for (const char c : content) {
    node = child(node, static_cast<uint8_t>(c));
    if (node == 0) return nullptr;
  }
  return node != 0 && trie_[node].token >= 0 ? &tokens_[trie_[node].token] : nullptr;
}

void AddedVocabulary::split(std::string_view text, std::vector<Section>& sections) const {
  sections.clear();
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    int32_t longest = -1;
    size_t longest_end = 0;
    if (starts_token_[static_cast<uint8_t>(text[i])]) {
      uint32_t node = 0;
      for (size_t j = i; j < text.size(); ++j) {
        node = child(node, static_cast<uint8_t>(text[j]));
        if (node == 0) break;
        if (trie_[node].token >= 0) {
          longest = trie_[node].token;
          longest_end = j + 1;
        }
      }
    }
    if (longest < 0) {
      ++i;
      continue;
    }
    if (i > start) sections.push_back({text.substr(start, i - start), nullptr});
    sections.push_back({text.substr(i, longest_end - i), &tokens_[longest]});
    i = start = longest_end;
  }
  if (start < text.size()) sections.push_back({text.substr(start), nullptr});

  // The reference recognises an added token by its text at the time it is looked at: a token
  // whose own content lost whitespace to a neighbour's strip is ordinary text from then on.
  const auto still_token = [](const Section& section) {
    return section.token && section.text == section.token->content ? section.token : nullptr;
  };
  for (size_t k = 0; k < sections.size(); ++k) {
    const AddedToken* token = still_token(sections[k]);
    if (!token) continue;
    if (token->lstrip && k > 0) sections[k - 1].text = trim_js_whitespace_end(sections[k - 1].text);
    if (token->rstrip && k + 1 < sections.size()) {
      sections[k + 1].text = trim_js_whitespace_start(sections[k + 1].text);
    }
  }
  for (auto& section : sections) section.token = still_token(section);
}

}  // namespace ssa::data
