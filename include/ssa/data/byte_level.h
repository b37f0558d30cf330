// GPT-2's byte-level alphabet: a reversible map from the 256 byte values to printable code points
// (printable Latin-1 bytes map to themselves, the others to U+0100 onwards). Byte-level BPE
// vocabularies and merges are written in this alphabet; the tokenizer works on raw bytes and uses
// the map only to read tokenizer.json and to spell tokens.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace ssa::data {

// The code point that stands for each byte value.
const std::array<char32_t, 256>& byte_level_alphabet();

// The raw bytes a byte-level token spells, or nullopt when it holds a character outside the
// alphabet. `token` is UTF-8.
std::optional<std::string> byte_level_decode(std::string_view token);

// The byte-level spelling (UTF-8) of raw bytes, e.g. " the" -> "Ġthe".
std::string byte_level_encode(std::string_view bytes);

}  // namespace ssa::data
