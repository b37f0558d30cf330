// Parity with the JavaScript reference (@lenml/tokenizers) on the Llama-3 tokenizer: every sample
// of tests/fixtures/tokenizer/llama3_parity.jsonl must encode to exactly the reference's ids.
// The tokenizer file is not in the repository: scripts/fetch-tokenizer.sh puts it in the cache
// (CI runs it before the tests); SSA_TOKENIZER_JSON points elsewhere. A missing file fails.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <memory>
#include <thread>

#include "data/tokenizer_fixture.h"
#include "ssa/data/tokenizer.h"

namespace ssa::data {
namespace {

std::string llama3_path() {
  if (const char* path = std::getenv("SSA_TOKENIZER_JSON"); path && *path) return path;
  const char* cache = std::getenv("SSA_CACHE");
  const char* home = std::getenv("HOME");
  const std::string folder = cache && *cache ? cache : std::string(home ? home : "") + "/.cache/ssa";
  return folder + "/tokenizers/llama3/tokenizer.json";
}

class Llama3Parity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = llama3_path();
    if (!std::filesystem::exists(path)) {
      missing_ = fmt::format("the Llama-3 tokenizer is missing at {}: run scripts/fetch-tokenizer.sh "
                             "(or set SSA_TOKENIZER_JSON to a copy)", path);
      return;
    }
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_file(path));
    samples_ = test::read_parity_samples(test::tokenizer_fixture("llama3_parity.jsonl"));
  }
  static void TearDownTestSuite() { tokenizer_.reset(); }
  void SetUp() override { ASSERT_TRUE(tokenizer_) << missing_; }

  static std::string missing_;
  static std::unique_ptr<Tokenizer> tokenizer_;
  static std::vector<test::ParitySample> samples_;
};
std::string Llama3Parity::missing_;
std::unique_ptr<Tokenizer> Llama3Parity::tokenizer_;
std::vector<test::ParitySample> Llama3Parity::samples_;

// Where two id sequences first differ, with the neighbouring ids decoded, for a readable failure.
std::string first_difference(const Tokenizer& tokenizer, const std::vector<uint32_t>& got,
                             const std::vector<uint32_t>& want) {
  size_t at = 0;
  while (at < got.size() && at < want.size() && got[at] == want[at]) ++at;
  const auto window = [&](const std::vector<uint32_t>& ids) {
    std::string out;
    for (size_t k = at; k < ids.size() && k < at + 6; ++k) {
      out += fmt::format("{}={:?} ", ids[k], tokenizer.decode({ids[k]}));
    }
    return out;
  };
  return fmt::format("first difference at id #{} (got {} ids, want {}): got [{}] want [{}]", at, got.size(),
                     want.size(), window(got), window(want));
}

TEST_F(Llama3Parity, EverySampleEncodesToTheReferenceIds) {
  ASSERT_GE(samples_.size(), 200u);
  size_t bytes = 0;
  for (const auto& sample : samples_) {
    bytes += sample.text.size();
    const auto ids = tokenizer_->encode(sample.text);
    EXPECT_EQ(ids, sample.ids) << sample.name << ": " << first_difference(*tokenizer_, ids, sample.ids);
  }
  EXPECT_GT(bytes, 2 * 20000u);  // the samples and the whole text.txt
}

TEST_F(Llama3Parity, DecodeRestoresEverySample) {
  for (const auto& sample : samples_) EXPECT_EQ(tokenizer_->decode(sample.ids), sample.text) << sample.name;
  const std::string text = test::read_text_file(test::tokenizer_fixture("text.txt"));
  EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text)), text);
}

TEST_F(Llama3Parity, SpecialTokensAndVocabulary) {
  EXPECT_EQ(tokenizer_->vocab_size(), 128256u);
  EXPECT_EQ(tokenizer_->eos_id(), 128001u);
  EXPECT_EQ(tokenizer_->bos_id(), 128000u);
  EXPECT_EQ(tokenizer_->token_to_id("<|eot_id|>"), 128009u);
  EXPECT_EQ(tokenizer_->token_to_id("Ġthe"), 279u);
  EXPECT_EQ(tokenizer_->encode("<|begin_of_text|>Hello, world!<|eot_id|>"),
            (std::vector<uint32_t>{128000, 9906, 11, 1917, 0, 128009}));
  EXPECT_EQ(tokenizer_->decode({128000, 9906, 128001}), "<|begin_of_text|>Hello<|end_of_text|>");
  if (!std::getenv("SSA_TOKENIZER_JSON")) {
    EXPECT_EQ(tokenizer_->name(), "llama3");
  }
}

TEST_F(Llama3Parity, ConcurrentEncodingMatchesTheReference) {
  std::vector<std::thread> threads;
  std::vector<size_t> mismatches(4, 0);
  for (size_t t = 0; t < mismatches.size(); ++t) {
    threads.emplace_back([&, t] {
      // Each thread walks the samples from a different start, so threads hit different words.
      for (size_t k = 0; k < samples_.size(); ++k) {
        const auto& sample = samples_[(k + t * 61) % samples_.size()];
        if (tokenizer_->encode(sample.text) != sample.ids) ++mismatches[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (size_t t = 0; t < mismatches.size(); ++t) EXPECT_EQ(mismatches[t], 0u) << "thread " << t;
}

}  // namespace
}  // namespace ssa::data
