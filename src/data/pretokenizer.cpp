#include "ssa/data/pretokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <stdexcept>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "ssa/data/utf8.h"
#include "ssa/util/error.h"

namespace ssa::data {
namespace {

// transformers.js rewrites these (exact substrings) before compiling a tokenizer.json regex as a
// JavaScript regex; the results are what its tokenizers match, so they are applied here too.
constexpr std::pair<std::string_view, std::string_view> kTransformersJsRewrites[] = {
    // JavaScript has no scoped case-insensitivity: the contractions get explicit classes (which
    // also keeps PCRE2 from folding "s" onto U+017F LATIN SMALL LETTER LONG S).
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))"},
    // BLOOM's split regex is invalid as a JavaScript class; transformers.js replaces it.
    {" ?[^(\\s|[.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c])]+",
     " ?[^\\s.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c]+"},
};

// The regex of transformers.js's ByteLevel pre-tokenizer (GPT-2's pattern) when use_regex is on.
constexpr std::string_view kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// The members of JavaScript's `\s` as PCRE2 class items.
std::string js_whitespace_items() {
  std::string items;
  for (const auto& range : kJsWhitespace) {
    items += fmt::format("\\x{{{:x}}}", static_cast<uint32_t>(range.first));
    if (range.last != range.first) items += fmt::format("-\\x{{{:x}}}", static_cast<uint32_t>(range.last));
  }
  return items;
}

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

[[noreturn]] void unsupported(std::string_view pattern, size_t at, std::string_view what) {
  throw UsageError(fmt::format("pre-tokenizer regex '{}': {} at offset {} is not supported", pattern,
                               what, at));
}

// Reads the hex digits of a `\u` escape starting at pattern[i] (just after "\u"); returns the
// code point and advances i past them.
char32_t read_unicode_escape(std::string_view pattern, size_t& i) {
  std::string digits;
  bool braced = i < pattern.size() && pattern[i] == '{';
  if (braced) {
    const size_t close = pattern.find('}', i);
    if (close == std::string_view::npos) unsupported(pattern, i, "an unterminated \\u{...}");
    digits = std::string(pattern.substr(i + 1, close - i - 1));
    i = close + 1;
  } else {
    digits = std::string(pattern.substr(i, 4));
    i += 4;
  }
  const bool length_ok = braced ? !digits.empty() && digits.size() <= 6 : digits.size() == 4;
  if (!length_ok || !std::all_of(digits.begin(), digits.end(), is_hex)) {
    unsupported(pattern, i, "a malformed \\u escape");
  }
  return static_cast<char32_t>(std::stoul(digits, nullptr, 16));
}

size_t utf8_length_at(std::string_view text, size_t i) {
  const auto lead = static_cast<uint8_t>(text[i]);
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  MatchScratch() { pcre2_jit_stack_assign(context, nullptr, jit_stack); }
  ~MatchScratch() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_data_free(data);
  }
};
// Match data and JIT stack are per thread: a compiled pattern is shared, its scratch is not.
thread_local MatchScratch t_match;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

std::string js_regex_to_pcre2(std::string_view original) {
  // transformers.js drops the backslash of \#, \& and \~ (valid in Rust, invalid in JavaScript).
  std::string pattern;
  for (size_t i = 0; i < original.size(); ++i) {
    if (original[i] == '\\' && i + 1 < original.size() &&
        (original[i + 1] == '#' || original[i + 1] == '&' || original[i + 1] == '~')) {
      continue;
    }
    pattern += original[i];
  }
  for (const auto& [from, to] : kTransformersJsRewrites) pattern = replace_all(std::move(pattern), from, to);

  const std::string whitespace = js_whitespace_items();
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size();) {
    const char c = pattern[i];
    if (c == '\\') {
      if (i + 1 >= pattern.size()) unsupported(pattern, i, "a trailing backslash");
      const char e = pattern[i + 1];
      const size_t at = i;
      i += 2;
      switch (e) {
        case 's': out += in_class ? whitespace : "[" + whitespace + "]"; break;
        case 'd': out += in_class ? "0-9" : "[0-9]"; break;
        case 'w': out += in_class ? "A-Za-z0-9_" : "[A-Za-z0-9_]"; break;
        case 'S':
        case 'D':
        case 'W': {
          if (in_class) unsupported(pattern, at, fmt::format("\\{} inside a class", e));
          const std::string items = e == 'S' ? whitespace : e == 'D' ? "0-9" : "A-Za-z0-9_";
          out += "[^" + items + "]";
          break;
        }
        case 'b':
          // Inside a class \b is a backspace in both dialects; outside, JavaScript's word
          // boundary is ASCII-only and PCRE2's is not.
          if (!in_class) unsupported(pattern, at, "\\b");
          out += "\\b";
          break;
        case 'B':
          unsupported(pattern, at, "\\B");
        case 'u': {
          char32_t cp = read_unicode_escape(pattern, i);
          // A surrogate pair spelled as two escapes is one code point in a `u`-flag regex.
          if (cp >= 0xD800 && cp <= 0xDBFF && pattern.compare(i, 2, "\\u") == 0) {
            size_t j = i + 2;
            const char32_t low = read_unicode_escape(pattern, j);
            if (low >= 0xDC00 && low <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
              i = j;
            }
          }
          out += fmt::format("\\x{{{:x}}}", static_cast<uint32_t>(cp));
          break;
        }
        default:
          out += '\\';
          out += e;
      }
      continue;
    }
    if (in_class) {
      if (c == ']') in_class = false;
      out += c == '[' ? "\\[" : std::string(1, c);
      ++i;
      continue;
    }
    if (c == '[') {
      const size_t body = i + 1 + (pattern.compare(i + 1, 1, "^") == 0 ? 1 : 0);
      if (body < pattern.size() && pattern[body] == ']') unsupported(pattern, i, "an empty class");
      out += pattern.substr(i, body - i);
      in_class = true;
      i = body;
      continue;
    }
    if (c == '(' && pattern.compare(i + 1, 1, "?") == 0) {
      static constexpr std::string_view kGroups[] = {"(?:", "(?=", "(?!", "(?<=", "(?<!"};
      bool known = false;
      for (const auto prefix : kGroups) known = known || pattern.compare(i, prefix.size(), prefix) == 0;
      const bool named = pattern.compare(i, 3, "(?<") == 0 && !known;
      if (!known && !named) unsupported(pattern, i, "a group modifier");
      out += '(';
      ++i;
      continue;
    }
    if (c == '.') {
      out += "[^\\n\\r\\x{2028}\\x{2029}]";  // JavaScript's `.` without the s flag
      ++i;
      continue;
    }
    out += c;
    ++i;
  }
  if (in_class) unsupported(pattern, pattern.size(), "an unterminated class");
  return out;
}

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() { pcre2_code_free(code); }
};

Regex::Regex(const std::string& pattern, bool literal) : compiled_(std::make_unique<Compiled>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // DOLLAR_ENDONLY: JavaScript's `$` (no m flag) matches only at the very end.
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_DOLLAR_ENDONLY);
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                  options, &error, &offset, nullptr);
  if (!compiled_->code) {
    throw UsageError(fmt::format("pre-tokenizer regex '{}' does not compile (PCRE2: {} at offset {})",
                                 pattern, pcre2_message(error), offset));
  }
  // Without JIT support (some platforms) the interpreter runs: slower, same results.
  compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;

bool Regex::find(std::string_view subject, size_t start, size_t* match_begin, size_t* match_end) const {
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  // pcre2_jit_match skips the interpreter's option checks: measurably faster per word.
  const int rc = compiled_->jit
                     ? pcre2_jit_match(compiled_->code, text, subject.size(), start, 0, t_match.data, t_match.context)
                     : pcre2_match(compiled_->code, text, subject.size(), start, PCRE2_NO_UTF_CHECK, t_match.data,
                                   t_match.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  // rc == 0 means the one-pair ovector could not hold the capture groups: still a match.
  if (rc < 0) throw std::runtime_error("pre-tokenizer regex match failed: " + pcre2_message(rc));
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(t_match.data);
  *match_begin = ovector[0];
  *match_end = ovector[1];
  return true;
}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& config) {
  PreTokenizer pre_tokenizer;
  pre_tokenizer.add(config, "pre_tokenizer");
  return pre_tokenizer;
}

void PreTokenizer::add(const nlohmann::json& config, const std::string& where) {
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    throw FormatError(fmt::format("{} is not an object with a string \"type\"", where));
  }
  const std::string type = config["type"];
  const auto flag = [&](const char* key, bool fallback) {
    if (!config.contains(key) || config[key].is_null()) return fallback;
    if (!config[key].is_boolean()) throw FormatError(fmt::format("{}.{} is not a boolean", where, key));
    return config[key].get<bool>();
  };
  if (type == "Sequence") {
    if (!config.contains("pretokenizers") || !config["pretokenizers"].is_array()) {
      throw FormatError(fmt::format("{}.pretokenizers is missing or not an array", where));
    }
    const auto& items = config["pretokenizers"];
    for (size_t k = 0; k < items.size(); ++k) add(items[k], fmt::format("{}.pretokenizers[{}]", where, k));
  } else if (type == "Split") {
    const auto& pattern = config.contains("pattern") ? config["pattern"] : nlohmann::json();
    Step step;
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      step.regex = std::make_shared<Regex>(js_regex_to_pcre2(pattern["Regex"].get<std::string>()), false);
    } else if (pattern.contains("String") && pattern["String"].is_string()) {
      step.regex = std::make_shared<Regex>(pattern["String"].get<std::string>(), true);
    } else {
      throw FormatError(fmt::format("{}.pattern has neither a \"Regex\" nor a \"String\"", where));
    }
    // transformers.js keeps only the matches when inverted, whatever the behaviour.
    if (flag("invert", false)) {
      step.keep = Keep::kMatchesOnly;
    } else {
      const std::string behavior = config.value("behavior", std::string("Isolated"));
      if (behavior != "Isolated") {
        throw UsageError(fmt::format("{}.behavior '{}' is not supported (only Isolated)", where, behavior));
      }
    }
    steps_.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    byte_level_ = true;
    Step step;
    step.prefix_space = flag("add_prefix_space", false);
    if (flag("use_regex", true)) step.regex = std::make_shared<Regex>(js_regex_to_pcre2(kGpt2Pattern), false);
    step.keep = Keep::kMatchesOnly;
    // The byte mapping itself needs no step: words stay raw bytes, the model's tokens are bytes.
    if (step.regex || step.prefix_space) steps_.push_back(std::move(step));
  } else {
    throw UsageError(fmt::format("{}.type '{}' is not supported (Split, ByteLevel and Sequence are)", where, type));
  }
}

void PreTokenizer::split(std::string_view text, const std::function<void(std::string_view)>& emit) const {
  apply(0, text, emit);
}

void PreTokenizer::apply(size_t index, std::string_view text,
                         const std::function<void(std::string_view)>& emit) const {
  if (index == steps_.size()) {
    if (!text.empty()) emit(text);
    return;
  }
  if (steps_[index].prefix_space && (text.empty() || text[0] != ' ')) {
    // The prefixed copy lives until every word derived from it has been emitted.
    const std::string prefixed = " " + std::string(text);
    split_step(index, prefixed, emit);
    return;
  }
  split_step(index, text, emit);
}

void PreTokenizer::split_step(size_t index, std::string_view text,
                              const std::function<void(std::string_view)>& emit) const {
  const Step& step = steps_[index];
  if (!step.regex) return apply(index + 1, text, emit);
  const bool keep_gaps = step.keep == Keep::kMatchesAndGaps;
  size_t previous = 0, position = 0, begin, end;
  while (position <= text.size() && step.regex->find(text, position, &begin, &end)) {
    if (keep_gaps && begin > previous) apply(index + 1, text.substr(previous, begin - previous), emit);
    if (end > begin) apply(index + 1, text.substr(begin, end - begin), emit);
    previous = end;
    // After an empty match JavaScript resumes one code point further.
    position = end > begin ? end : begin + (begin < text.size() ? utf8_length_at(text, begin) : 1);
  }
  if (keep_gaps && previous < text.size()) apply(index + 1, text.substr(previous), emit);
}

}  // namespace ssa::data
