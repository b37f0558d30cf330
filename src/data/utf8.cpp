#include "ssa/data/utf8.h"

#include <cstdint>
#include <cstring>

namespace ssa::data {
namespace {

// Length of the valid UTF-8 sequence starting at text[i], or 0 when the bytes there are not one.
// Hand-written because the repair must follow the WHATWG decoder's byte ranges exactly (overlong
// forms, surrogates and code points above U+10FFFF are invalid), which decides where U+FFFD goes.
size_t valid_sequence_length(std::string_view text, size_t i, size_t* maximal_invalid_prefix) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t lead = byte(i);
  *maximal_invalid_prefix = 1;
  if (lead < 0x80) return 1;
  size_t needed;
  uint8_t low = 0x80, high = 0xBF;  // allowed range of the first continuation byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    needed = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    needed = 2;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    needed = 3;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k <= needed; ++k) {
    if (i + k >= text.size()) {
      *maximal_invalid_prefix = k;
      return 0;
    }
    const uint8_t c = byte(i + k);
    const uint8_t lo = k == 1 ? low : 0x80, hi = k == 1 ? high : 0xBF;
    if (c < lo || c > hi) {
      *maximal_invalid_prefix = k;
      return 0;
    }
  }
  return needed + 1;
}

// Position of the first byte that does not start a valid sequence, or text.size().
size_t first_invalid(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    // Eight ASCII bytes at a time: most training text is mostly ASCII.
    if (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, text.data() + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    size_t invalid_prefix;
    const size_t length = valid_sequence_length(text, i, &invalid_prefix);
    if (length == 0) return i;
    i += length;
  }
  return n;
}

char32_t decode_at(std::string_view text, size_t i, size_t* length) {
  const auto byte = [&](size_t k) { return static_cast<char32_t>(static_cast<uint8_t>(text[k])); };
  const char32_t lead = byte(i);
  if (lead < 0x80) {
    *length = 1;
    return lead;
  }
  if (lead < 0xE0) {
    *length = 2;
    return ((lead & 0x1F) << 6) | (byte(i + 1) & 0x3F);
  }
  if (lead < 0xF0) {
    *length = 3;
    return ((lead & 0x0F) << 12) | ((byte(i + 1) & 0x3F) << 6) | (byte(i + 2) & 0x3F);
  }
  *length = 4;
  return ((lead & 0x07) << 18) | ((byte(i + 1) & 0x3F) << 12) | ((byte(i + 2) & 0x3F) << 6) |
         (byte(i + 3) & 0x3F);
}

}  // namespace

bool is_js_whitespace(char32_t code_point) {
  for (const auto& range : kJsWhitespace) {
    if (code_point >= range.first && code_point <= range.last) return true;
  }
  return false;
}

std::optional<std::string> repair_utf8(std::string_view text) {
  size_t i = first_invalid(text);
  if (i == text.size()) return std::nullopt;
  std::string out(text.substr(0, i));
  out.reserve(text.size() + 16);
  while (i < text.size()) {
    size_t invalid_prefix;
    const size_t length = valid_sequence_length(text, i, &invalid_prefix);
    if (length > 0) {
      out.append(text.data() + i, length);
      i += length;
    } else {
      append_utf8(0xFFFD, out);
      i += invalid_prefix;
    }
  }
  return out;
}

std::string_view trim_js_whitespace_start(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    size_t length;
    if (!is_js_whitespace(decode_at(text, i, &length))) break;
    i += length;
  }
  return text.substr(i);
}

std::string_view trim_js_whitespace_end(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    size_t length;
    if (!is_js_whitespace(decode_at(text, start, &length))) break;
    end = start;
  }
  return text.substr(0, end);
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace ssa::data
