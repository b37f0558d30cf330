// The pre-tokenizer of a byte-level BPE tokenizer.json: splits text into the words BPE encodes.
// Supports the pieces Llama-3 and GPT-2 style files use (Split with a regex or string and the
// Isolated behaviour, ByteLevel with or without its GPT-2 regex and prefix space, Sequence of
// those), with the semantics of transformers.js (@lenml/tokenizers), the project's reference.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ssa::data {

// Translates a regex from a tokenizer.json (written for Rust / Python, and run by transformers.js
// as a JavaScript regex with the `u` flag) into PCRE2 syntax with the JavaScript meaning:
// transformers.js's own rewrites first (e.g. `(?i:'s|'t|...)` into explicit case classes), then
// `\s`, `\d`, `\w`, `.` and `\uXXXX` spelled out so that PCRE2 matches what JavaScript matches.
// Throws ssa::UsageError for constructs whose meaning differs and that are not translated.
std::string js_regex_to_pcre2(std::string_view pattern);

// A compiled PCRE2 pattern (JIT when available), safe to match from several threads.
class Regex {
 public:
  // `literal`: the pattern is a plain string to find, not a regex.
  Regex(const std::string& pattern, bool literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Finds the first match in `subject` at or after byte `start`; false when there is none.
  // `subject` must be valid UTF-8; lookarounds see only `subject`.
  bool find(std::string_view subject, size_t start, size_t* match_begin, size_t* match_end) const;

 private:
  struct Compiled;
  std::unique_ptr<Compiled> compiled_;
};

class PreTokenizer {
 public:
  // `config` is tokenizer.json's "pre_tokenizer" (not null). Throws ssa::UsageError for a
  // pre-tokenizer that is not supported and ssa::FormatError for a malformed one.
  static PreTokenizer from_json(const nlohmann::json& config);

  // Whether a ByteLevel step is present: the tokenizer then encodes bytes, not characters.
  bool byte_level() const { return byte_level_; }

  // Calls `emit` with every word of `text` (valid UTF-8), in order. Words are views into `text`
  // or into temporaries that live for the duration of the call.
  void split(std::string_view text, const std::function<void(std::string_view)>& emit) const;

 private:
  enum class Keep { kMatchesAndGaps, kMatchesOnly };
  struct Step {
    std::shared_ptr<const Regex> regex;  // null: the whole text is one piece
    Keep keep = Keep::kMatchesAndGaps;
    bool prefix_space = false;  // prepend " " to a piece that does not start with one
  };
  void add(const nlohmann::json& config, const std::string& where);
  // Runs steps_[index..] on `text`: apply adds the prefix space, split_step splits.
  void apply(size_t index, std::string_view text, const std::function<void(std::string_view)>& emit) const;
  void split_step(size_t index, std::string_view text, const std::function<void(std::string_view)>& emit) const;

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace ssa::data
