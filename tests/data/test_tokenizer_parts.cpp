// The parts of the tokenizer on their own: byte-level alphabet, UTF-8 repair and JavaScript
// whitespace, regex translation, pre-tokenizer steps, added-token splitting and BPE merging.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ssa/data/added_tokens.h"
#include "ssa/data/bpe.h"
#include "ssa/data/byte_level.h"
#include "ssa/data/pretokenizer.h"
#include "ssa/data/utf8.h"
#include "ssa/util/error.h"

namespace ssa::data {
namespace {

using Words = std::vector<std::string>;

TEST(ByteLevel, AlphabetIsGpt2sAndInvertible) {
  const auto& alphabet = byte_level_alphabet();
  EXPECT_EQ(alphabet['a'], U'a');
  EXPECT_EQ(alphabet[' '], U'\u0120');   // Ġ
  EXPECT_EQ(alphabet['\n'], U'\u010A');  // Ċ
  EXPECT_EQ(alphabet[0xAD], U'\u0143');  // the last unprintable byte gets the last code point
  EXPECT_EQ(byte_level_encode(" the\n"), "\u0120the\u010A");
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte.push_back(static_cast<char>(b));
  EXPECT_EQ(byte_level_decode(byte_level_encode(every_byte)), every_byte);
  EXPECT_FALSE(byte_level_decode("\u03A9"));  // Ω is not in the alphabet
  EXPECT_FALSE(byte_level_decode("a\u4E2D"));
}

TEST(Utf8, RepairReplacesMaximalInvalidSubparts) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_FALSE(repair_utf8("plain ASCII and caf\xC3\xA9 and \xF0\x9F\x98\x80"));
  EXPECT_EQ(repair_utf8("a\xFF" "b"), "a" + fffd + "b");
  EXPECT_EQ(repair_utf8("\xE2\x82"), fffd);                        // truncated: one replacement
  EXPECT_EQ(repair_utf8("\xE2\x82" "A"), fffd + "A");              // cut short by an ASCII byte
  EXPECT_EQ(repair_utf8("\xED\xA0\x80"), fffd + fffd + fffd);      // an encoded surrogate
  EXPECT_EQ(repair_utf8("\xC0\xAF"), fffd + fffd);                 // overlong
  EXPECT_EQ(repair_utf8("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // above U+10FFFF
  EXPECT_EQ(repair_utf8("\xF0\x9F\x98" "x\xF0\x9F\x98\x80"), fffd + "x\xF0\x9F\x98\x80");
}

TEST(Utf8, JavaScriptWhitespace) {
  for (char32_t cp : {U'\t', U'\v', U' ', U'\u00A0', U'\u2028', U'\u3000', U'\uFEFF'}) EXPECT_TRUE(is_js_whitespace(cp));
  // Not whitespace in JavaScript, though some regex engines say otherwise.
  for (char32_t cp : {U'\u0085', U'\u180E', U'\u200B', U'a'}) EXPECT_FALSE(is_js_whitespace(cp));
  EXPECT_EQ(trim_js_whitespace_start("\u3000 \tx y "), "x y ");
  EXPECT_EQ(trim_js_whitespace_end(" x y\n\u00A0"), " x y");
  EXPECT_EQ(trim_js_whitespace_end("\u0085"), "\u0085");
  EXPECT_EQ(trim_js_whitespace_start("  "), "");
}

TEST(RegexTranslation, SpellsOutJavaScriptClasses) {
  const std::string whitespace =
      "\\x{9}-\\x{d}\\x{20}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}-\\x{2029}\\x{202f}\\x{205f}\\x{3000}\\x{feff}";
  EXPECT_EQ(js_regex_to_pcre2("\\s+"), "[" + whitespace + "]+");
  EXPECT_EQ(js_regex_to_pcre2("[^\\s\\p{L}]"), "[^" + whitespace + "\\p{L}]");
  EXPECT_EQ(js_regex_to_pcre2("\\s+(?!\\S)"), "[" + whitespace + "]+(?![^" + whitespace + "])");
  EXPECT_EQ(js_regex_to_pcre2("\\d\\w."), "[0-9][A-Za-z0-9_][^\\n\\r\\x{2028}\\x{2029}]");
  EXPECT_EQ(js_regex_to_pcre2("\\u00e9\\uD83D\\uDE00\\u{1F600}"), "\\x{e9}\\x{1f600}\\x{1f600}");
  EXPECT_EQ(js_regex_to_pcre2("\\#\\&\\~[a[b]"), "#&~[a\\[b]");
  EXPECT_EQ(js_regex_to_pcre2("(?i:'s|'t|'re|'ve|'m|'ll|'d)|x"),
            "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))|x");
}

TEST(RegexTranslation, RejectsWhatItCannotTranslate) {
  for (const char* pattern : {"(?i)abc", "(?i:'x)", "\\bword", "x\\B", "[\\S]", "[]", "[^]", "[abc", "abc\\",
                              "\\u12", "\\u{}"}) {
    EXPECT_THROW(js_regex_to_pcre2(pattern), UsageError) << pattern;
  }
}

TEST(Regex, MatchesWithJavaScriptMeaning) {
  const Regex whitespace(js_regex_to_pcre2("\\s+"), false);
  size_t begin = 0, end = 0;
  ASSERT_TRUE(whitespace.find("a\u3000\u00A0b", 0, &begin, &end));
  EXPECT_EQ(begin, 1u);
  EXPECT_EQ(end, 6u);
  EXPECT_FALSE(whitespace.find("a\u0085\u180Eb", 0, &begin, &end));
  const Regex contraction(js_regex_to_pcre2("(?i:'s|'t|'re|'ve|'m|'ll|'d)"), false);
  EXPECT_TRUE(contraction.find("X'LL", 0, &begin, &end));
  EXPECT_FALSE(contraction.find("'\u017F", 0, &begin, &end));  // ſ: no Unicode case folding
  const Regex literal("a.b", true);
  EXPECT_FALSE(literal.find("axb", 0, &begin, &end));
  EXPECT_TRUE(literal.find("xa.b", 0, &begin, &end));
  EXPECT_EQ(begin, 1u);
  EXPECT_THROW(Regex("(unclosed", false), UsageError);
}

Words split(const PreTokenizer& pre_tokenizer, std::string_view text) {
  Words words;
  pre_tokenizer.split(text, [&](std::string_view word) { words.emplace_back(word); });
  return words;
}

TEST(PreTokenizer, SplitKeepsMatchesAndGapsAndByteLevelAddsItsRegex) {
  const auto dash = PreTokenizer::from_json(nlohmann::json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"String": "-"}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})"));
  EXPECT_TRUE(dash.byte_level());
  EXPECT_EQ(split(dash, "a-b--c d"), (Words{"a", "-", "b", "-", "-", "c d"}));

  const auto digits = PreTokenizer::from_json(nlohmann::json::parse(
      R"({"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Removed", "invert": true})"));
  EXPECT_FALSE(digits.byte_level());
  EXPECT_EQ(split(digits, "ab12cd345e"), (Words{"12", "345"}));

  const auto gpt2 = PreTokenizer::from_json(nlohmann::json::parse(R"({"type": "ByteLevel", "add_prefix_space": true})"));
  EXPECT_EQ(split(gpt2, "Hello, it's 2024!  "), (Words{" Hello", ",", " it", "'s", " 2024", "!", "  "}));
}

TEST(PreTokenizer, RejectsUnsupportedSteps) {
  EXPECT_THROW(PreTokenizer::from_json(nlohmann::json::parse(
                   R"({"type": "Split", "pattern": {"Regex": "x"}, "behavior": "MergedWithPrevious", "invert": false})")),
               UsageError);
  EXPECT_THROW(PreTokenizer::from_json(nlohmann::json::parse(R"({"type": "Whitespace"})")), UsageError);
  EXPECT_THROW(PreTokenizer::from_json(nlohmann::json::parse(R"({"type": "Split", "behavior": "Isolated"})")),
               FormatError);
  EXPECT_THROW(PreTokenizer::from_json(nlohmann::json::parse(R"({"type": "Sequence"})")), FormatError);
}

TEST(AddedVocabulary, LongestTokenAtTheFirstPositionWins) {
  AddedVocabulary added({{"<a>", 1}, {"<a><b>", 2}, {"<b>", 3}, {"", 4}});
  std::vector<AddedVocabulary::Section> sections;
  added.split("x<a><b>y<<a>z<b", sections);
  std::vector<std::pair<std::string, int>> got;
  for (const auto& section : sections) got.emplace_back(section.text, section.token ? int(section.token->id) : -1);
  EXPECT_EQ(got, (std::vector<std::pair<std::string, int>>{
                     {"x", -1}, {"<a><b>", 2}, {"y<", -1}, {"<a>", 1}, {"z<b", -1}}));
  EXPECT_EQ(added.find("<b>")->id, 3u);
  EXPECT_EQ(added.find("<"), nullptr);
  EXPECT_EQ(added.find(""), nullptr);
}

BpeModel model(const std::vector<std::pair<std::string, std::string>>& merges, std::vector<std::string> extra,
               bool ignore_merges = false) {
  std::vector<BpeModel::Token> vocab;
  for (int b = 0; b < 256; ++b) vocab.push_back({std::string(1, static_cast<char>(b)), static_cast<uint32_t>(b)});
  for (auto& token : extra) vocab.push_back({std::move(token), static_cast<uint32_t>(vocab.size())});
  std::vector<BpeModel::Merge> merge_list;
  for (const auto& [left, right] : merges) merge_list.push_back({left, right});
  BpeModel::Options options;
  options.ignore_merges = ignore_merges;
  return BpeModel(std::move(vocab), merge_list, options);
}

std::vector<uint32_t> encode(const BpeModel& bpe, std::string_view word) {
  std::vector<uint32_t> ids;
  bpe.encode_word(word, ids);
  return ids;
}

TEST(BpeModel, LowestRankFirstAndTiesToTheLeft) {
  // ids: "bc" 256, "ab" 257, "abc" 258, "aa" 259
  const auto bpe = model({{"b", "c"}, {"a", "b"}, {"a", "bc"}, {"a", "a"}}, {"bc", "ab", "abc", "aa"});
  EXPECT_EQ(encode(bpe, "abc"), (std::vector<uint32_t>{258}));  // bc (rank 0) before ab (rank 1)
  EXPECT_EQ(encode(bpe, "abx"), (std::vector<uint32_t>{257, 'x'}));
  EXPECT_EQ(encode(bpe, "aaa"), (std::vector<uint32_t>{259, 'a'}));
  EXPECT_EQ(encode(bpe, "aaaaa"), (std::vector<uint32_t>{259, 259, 'a'}));
  EXPECT_EQ(encode(bpe, ""), std::vector<uint32_t>{});
  const std::string long_word(3000, 'a');  // longer than the word cache takes
  EXPECT_EQ(encode(bpe, long_word), std::vector<uint32_t>(1500, 259));
  EXPECT_EQ(bpe.merge_count(), 4u);
  EXPECT_EQ(bpe.id_of("abc"), 258u);
  EXPECT_FALSE(bpe.id_of("abcd"));
}

TEST(BpeModel, IgnoreMergesAndRepeatedLookups) {
  const auto plain = model({{"a", "b"}}, {"ab", "xyz"});
  const auto ignoring = model({{"a", "b"}}, {"ab", "xyz"}, true);
  for (int round = 0; round < 2; ++round) {  // the second round is answered by the word cache
    EXPECT_EQ(encode(plain, "xyz"), (std::vector<uint32_t>{'x', 'y', 'z'}));
    EXPECT_EQ(encode(ignoring, "xyz"), (std::vector<uint32_t>{257}));
    EXPECT_EQ(encode(ignoring, "abab"), (std::vector<uint32_t>{256, 256}));
  }
}

TEST(BpeModel, LaterDuplicateMergesOverrideEarlierOnes) {
  // "b c" is listed first and again last: its rank becomes 2, after "a b".
  const auto bpe = model({{"b", "c"}, {"a", "b"}, {"b", "c"}}, {"bc", "ab"});
  EXPECT_EQ(encode(bpe, "abc"), (std::vector<uint32_t>{257, 'c'}));
}

}  // namespace
}  // namespace ssa::data
