// UTF-8 handling the tokenizer needs: repairing invalid input the way JavaScript's TextDecoder
// does (each maximal invalid subpart becomes U+FFFD), and JavaScript's notion of whitespace, which
// the reference tokenizer (@lenml/tokenizers) uses for `\s` and for trimming around added tokens.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ssa::data {

// Inclusive code point ranges of JavaScript's `\s` (WhiteSpace and LineTerminator of ECMA-262).
struct CodePointRange {
  char32_t first;
  char32_t last;
};
inline constexpr CodePointRange kJsWhitespace[] = {
    {0x09, 0x0D},     {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A},
    {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF},
};

bool is_js_whitespace(char32_t code_point);

// Nullopt when `text` is valid UTF-8; otherwise a copy with every maximal invalid subpart
// (WHATWG "replacement" decoding, as TextDecoder and Node's Buffer.toString do) replaced by U+FFFD.
std::optional<std::string> repair_utf8(std::string_view text);

// `text` without leading / trailing JavaScript whitespace (String.prototype.trimStart / trimEnd).
// `text` must be valid UTF-8.
std::string_view trim_js_whitespace_start(std::string_view text);
std::string_view trim_js_whitespace_end(std::string_view text);

// Appends the UTF-8 encoding of `code_point` to `out`.
void append_utf8(char32_t code_point, std::string& out);

}  // namespace ssa::data
