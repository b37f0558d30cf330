// Tokenizer behaviour on the tiny GPT-2 style tokenizer in tests/fixtures/tokenizer/tiny_gpt2.json
// (GPT-2's byte alphabet as ids 0..255, then 16 merges, "abc" = 272, <|endoftext|> = 273): hand
// checked encodings, parity with the JavaScript reference, round trips and load errors.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/tokenizer_fixture.h"
#include "ssa/data/tokenizer.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"

namespace ssa::data {
namespace {

using Ids = std::vector<uint32_t>;
using test::read_text_file;
using test::tokenizer_fixture;

const Tokenizer& tiny() {
  static const Tokenizer tokenizer = Tokenizer::from_file(tokenizer_fixture("tiny_gpt2.json"));
  return tokenizer;
}

// Writes tiny_gpt2.json changed by `edit` into `dir` and returns its path.
std::string tiny_variant(const test::TempDir& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto config = nlohmann::json::parse(read_text_file(tokenizer_fixture("tiny_gpt2.json")));
  edit(config);
  const auto path = (dir / "variant.json").string();
  std::ofstream(path) << config.dump();
  return path;
}

std::string thrown_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Tokenizer, HandCheckedEncodings) {
  // "hello": h e l l o -> he (rank 1), ll (5), hell (6), hello (7).
  EXPECT_EQ(tiny().encode("hello"), (Ids{263}));
  // " world": Ġw (8), or (9), Ġwor (10) before ld (11), then Ġworld (12).
  EXPECT_EQ(tiny().encode("hello world"), (Ids{263, 268}));
  // Capital H has no merge: H e ll o, with "e l" absent.
  EXPECT_EQ(tiny().encode("Hello world"), (Ids{39, 68, 261, 78, 268}));
  EXPECT_EQ(tiny().encode(" the the  the"), (Ids{258, 258, 220, 258}));
  // The GPT-2 regex keeps " 123" together: Ġ 12 3.
  EXPECT_EQ(tiny().encode("12 123 1234"), (Ids{271, 220, 271, 18, 220, 271, 18, 19}));
  EXPECT_EQ(tiny().encode("it's"), (Ids{72, 83, 270}));
  EXPECT_EQ(tiny().encode("hello<|endoftext|>world"), (Ids{263, 273, 86, 265, 267}));
  EXPECT_EQ(tiny().encode(""), Ids{});
}

TEST(Tokenizer, MatchesTheJavaScriptReferenceOnTheTinyTokenizer) {
  const auto samples = test::read_parity_samples(tokenizer_fixture("tiny_gpt2_parity.jsonl"));
  ASSERT_GE(samples.size(), 10u);
  for (const auto& sample : samples) EXPECT_EQ(tiny().encode(sample.text), sample.ids) << sample.name;
}

TEST(Tokenizer, DecodeInvertsEncodeOnTheFixtureText) {
  const std::string text = read_text_file(tokenizer_fixture("text.txt"));
  ASSERT_GT(text.size(), 20000u);
  const auto ids = tiny().encode(text);
  EXPECT_GT(ids.size(), text.size() / 2);  // few merges: mostly single bytes
  EXPECT_EQ(tiny().decode(ids), text);
}

TEST(Tokenizer, DecodeSpellsAddedTokensAndRejectsUnknownIds) {
  EXPECT_EQ(tiny().decode({263, 273, 268}), "hello<|endoftext|> world");
  EXPECT_EQ(tiny().decode({}), "");
  const std::string message = thrown_message([] { tiny().decode({263, 274}); });
  EXPECT_NE(message.find("274"), std::string::npos) << message;
  EXPECT_THROW(tiny().decode({4000000000u}), UsageError);
}

TEST(Tokenizer, VocabularyQueries) {
  EXPECT_EQ(tiny().vocab_size(), 274u);
  EXPECT_EQ(tiny().eos_id(), 273u);
  EXPECT_FALSE(tiny().bos_id());
  EXPECT_EQ(tiny().name(), "tiny_gpt2");
  EXPECT_EQ(tiny().token_to_id("Ġthe"), 258u);
  EXPECT_EQ(tiny().token_to_id("<|endoftext|>"), 273u);
  EXPECT_EQ(tiny().token_to_id("!"), 0u);
  EXPECT_FALSE(tiny().token_to_id("the"));
  EXPECT_FALSE(tiny().token_to_id("Ω"));
}

TEST(Tokenizer, NameIsTheFolderOfATokenizerJson) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "my-model");
  const auto path = (dir / "my-model" / "tokenizer.json").string();
  std::filesystem::copy_file(tokenizer_fixture("tiny_gpt2.json"), path);
  EXPECT_EQ(Tokenizer::from_file(path).name(), "my-model");
}

TEST(Tokenizer, IgnoreMergesEmitsVocabularyWordsWhole) {
  EXPECT_EQ(tiny().encode("abc abcd"), (Ids{64, 65, 66, 260, 65, 66, 67}));
  test::TempDir dir;
  const auto ignoring = Tokenizer::from_file(
      tiny_variant(dir, [](nlohmann::json& config) { config["model"]["ignore_merges"] = true; }));
  EXPECT_EQ(ignoring.encode("abc abcd"), (Ids{272, 260, 65, 66, 67}));
  EXPECT_EQ(ignoring.encode("hello world"), (Ids{263, 268}));
}

TEST(Tokenizer, PrefixSpaceIsAddedToEachPieceWithoutOne) {
  test::TempDir dir;
  const auto prefixed = Tokenizer::from_file(
      tiny_variant(dir, [](nlohmann::json& config) { config["pre_tokenizer"]["add_prefix_space"] = true; }));
  EXPECT_EQ(prefixed.encode("hello"), (Ids{220, 263}));
  EXPECT_EQ(prefixed.encode(" hello"), (Ids{220, 263}));
  // The text after an added token is a new piece and gets its own space.
  EXPECT_EQ(prefixed.encode("hello<|endoftext|>the"), (Ids{220, 263, 273, 258}));
}

TEST(Tokenizer, StripFlagsOfAddedTokensEatNeighbouringWhitespace) {
  test::TempDir dir;
  const auto stripping = Tokenizer::from_file(tiny_variant(dir, [](nlohmann::json& config) {
    config["added_tokens"].push_back({{"id", 274}, {"content", "<mask>"}, {"lstrip", true}, {"rstrip", true}});
  }));
  EXPECT_EQ(stripping.vocab_size(), 275u);
  // JavaScript whitespace on both sides goes, including U+3000; U+0085 is not whitespace there.
  EXPECT_EQ(stripping.encode("a \t<mask>\n\u3000b"), (Ids{64, 274, 65}));
  EXPECT_EQ(stripping.encode("a<mask>\u0085b").size(), 5u);
  EXPECT_EQ(stripping.encode("a <|endoftext|> b"), (Ids{64, 220, 273, 220, 65}));
}

TEST(Tokenizer, InvalidUtf8IsReplacedLikeTextDecoderDoes) {
  EXPECT_EQ(tiny().encode("a\xff" "b"), tiny().encode("a\xEF\xBF\xBD" "b"));
  // A truncated sequence is one replacement character, an encoded surrogate three.
  EXPECT_EQ(tiny().decode(tiny().encode("x\xE2\x82")), "x\xEF\xBF\xBD");
  EXPECT_EQ(tiny().decode(tiny().encode("\xED\xA0\x80")), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Tokenizer, ConcurrentEncodingGivesTheSameIds) {
  const std::string text = read_text_file(tokenizer_fixture("text.txt"));
  const auto expected = tiny().encode(text);
  std::vector<Ids> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&] {
      for (int round = 0; round < 3; ++round) result = tiny().encode(text);
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
}

TEST(Tokenizer, UnknownByteNeedsAnUnkToken) {
  test::TempDir dir;
  const auto without_z = [](nlohmann::json& config) { config["model"]["vocab"].erase("z"); };
  const std::string message = thrown_message([&] { Tokenizer::from_file(tiny_variant(dir, without_z)); });
  EXPECT_NE(message.find("0x7A"), std::string::npos) << message;
  EXPECT_THROW(Tokenizer::from_file(tiny_variant(dir, without_z)), FormatError);

  const auto with_unk = Tokenizer::from_file(tiny_variant(dir, [&](nlohmann::json& config) {
    without_z(config);
    config["model"]["unk_token"] = "abc";
  }));
  EXPECT_EQ(with_unk.encode("zz a"), (Ids{272, 272, 260}));
}

TEST(Tokenizer, LoadErrors) {
  test::TempDir dir;
  const auto missing = (dir / "absent.json").string();
  const std::string message = thrown_message([&] { Tokenizer::from_file(missing); });
  EXPECT_NE(message.find(missing), std::string::npos) << message;
  EXPECT_THROW(Tokenizer::from_file(missing), UsageError);

  const auto truncated = (dir / "truncated.json").string();
  std::ofstream(truncated) << read_text_file(tokenizer_fixture("tiny_gpt2.json")).substr(0, 500);
  EXPECT_THROW(Tokenizer::from_file(truncated), FormatError);

  const auto expect_error = [&](const std::function<void(nlohmann::json&)>& edit, bool usage, const std::string& needle) {
    const auto path = tiny_variant(dir, edit);
    const std::string what = thrown_message([&] { Tokenizer::from_file(path); });
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    if (usage) {
      EXPECT_THROW(Tokenizer::from_file(path), UsageError) << needle;
    } else {
      EXPECT_THROW(Tokenizer::from_file(path), FormatError) << needle;
    }
  };
  expect_error([](nlohmann::json& c) { c.erase("model"); }, false, "model");
  expect_error([](nlohmann::json& c) { c["model"]["merges"].push_back("x Ω"); }, false, "merges[16]");
  expect_error([](nlohmann::json& c) { c["model"]["merges"].push_back("x q"); }, false, "'xq' is not in model.vocab");
  expect_error([](nlohmann::json& c) { c["model"]["merges"].push_back("xq"); }, false, "merges[16]");
  expect_error([](nlohmann::json& c) { c["model"]["vocab"]["again"] = 5; }, false, "id 5");
  expect_error([](nlohmann::json& c) { c["model"]["vocab"]["neg"] = -1; }, false, "-1");
  expect_error([](nlohmann::json& c) { c["added_tokens"][0].erase("id"); }, false, "added_tokens[0]");
  expect_error([](nlohmann::json& c) { c["model"]["type"] = "WordPiece"; }, true, "WordPiece");
  expect_error([](nlohmann::json& c) { c["normalizer"] = {{"type", "NFC"}}; }, true, "NFC");
  expect_error([](nlohmann::json& c) { c["pre_tokenizer"] = {{"type", "Metaspace"}}; }, true, "Metaspace");
  expect_error([](nlohmann::json& c) { c["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}},
                                                              {"behavior", "Isolated"}}; },
               true, "ByteLevel");
  expect_error([](nlohmann::json& c) { c["decoder"] = {{"type", "Metaspace"}}; }, true, "decoder");
}

}  // namespace
}  // namespace ssa::data
