#include "ssa/data/byte_level.h"

#include <cstdint>

#include "ssa/data/utf8.h"

namespace ssa::data {
namespace {

// Inverse table: code points of the alphabet are all below U+0144.
constexpr char32_t kAlphabetEnd = 0x144;

struct Tables {
  std::array<char32_t, 256> byte_to_code_point{};
  std::array<int16_t, kAlphabetEnd> code_point_to_byte{};
};

const Tables& tables() {
  static const Tables t = [] {
    Tables built;
    built.code_point_to_byte.fill(-1);
    const auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next_unprintable = 0x100;
    for (int b = 0; b < 256; ++b) {
      const char32_t cp = printable(b) ? static_cast<char32_t>(b) : next_unprintable++;
      built.byte_to_code_point[b] = cp;
      built.code_point_to_byte[cp] = static_cast<int16_t>(b);
    }
    return built;
  }();
  return t;
}

}  // namespace

const std::array<char32_t, 256>& byte_level_alphabet() { return tables().byte_to_code_point; }

std::optional<std::string> byte_level_decode(std::string_view token) {
  const auto& inverse = tables().code_point_to_byte;
  std::string bytes;
  bytes.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    const auto lead = static_cast<uint8_t>(token[i]);
    char32_t cp;
    size_t length;
    if (lead < 0x80) {
      cp = lead;
      length = 1;
    } else if ((lead & 0xE0) == 0xC0 && i + 1 < token.size()) {
      cp = (static_cast<char32_t>(lead & 0x1F) << 6) | (static_cast<uint8_t>(token[i + 1]) & 0x3F);
      length = 2;
    } else {
      return std::nullopt;  // three- and four-byte characters are all outside the alphabet
    }
    if (cp >= kAlphabetEnd || inverse[cp] < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(inverse[cp]));
    i += length;
  }
  return bytes;
}

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(byte_level_alphabet()[static_cast<uint8_t>(c)], out);
  return out;
}

}  // namespace ssa::data
