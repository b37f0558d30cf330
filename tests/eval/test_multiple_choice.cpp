#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "eval/tiny_model.h"
#include "ssa/eval/choice_conversion.h"
#include "ssa/eval/model_loglikelihood.h"
#include "ssa/eval/multiple_choice.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"

namespace ssa::eval {
namespace {

// Two items; the fake scorer returns fixed log-likelihoods per continuation.
//   item 0: gold 1. " ab" -2.0 (2 chars: -1.0), " abcdef" -3.0 (6 chars: -0.5)
//           acc picks 0 (wrong), acc_norm picks 1 (right)
//   item 1: gold 0. " x" -1.0 (1 char: -1.0), " yyyy" -1.5 (4 chars: -0.375)
//           acc picks 0 (right), acc_norm picks 1 (wrong)
//   item 2: gold 2. " p" -5, " q" -4, " rr" -0.5: both pick 2 (right)
// acc = 2/3, acc_norm = 2/3, with different items right.
std::vector<ChoiceItem> toy_items() {
  return {{"Q0", {"ab", "abcdef"}, 1}, {"Q1", {"x", "yyyy"}, 0}, {"Q2", {"p", "q", "rr"}, 2}};
}

LoglikelihoodFn toy_scorer(std::vector<LoglikelihoodRequest>* seen = nullptr) {
  return [seen](const std::vector<LoglikelihoodRequest>& requests) {
    const std::map<std::string, double> ll{{" ab", -2.0}, {" abcdef", -3.0}, {" x", -1.0}, {" yyyy", -1.5},
                                           {" p", -5.0},  {" q", -4.0},      {" rr", -0.5}};
    std::vector<double> out;
    for (const auto& r : requests) {
      if (seen) seen->push_back(r);
      out.push_back(ll.at(r.continuation));
    }
    return out;
  };
}

TEST(MultipleChoice, AccAndAccNormOnAHandComputedToy) {
  const auto items = toy_items();
  std::vector<LoglikelihoodRequest> seen;
  auto scores = score_choices(items, items, true, {}, toy_scorer(&seen));
  EXPECT_EQ(scores.items, 3);
  EXPECT_NEAR(scores.acc, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(scores.acc_norm, 2.0 / 3.0, 1e-12);
  ASSERT_EQ(seen.size(), 7u);
  EXPECT_EQ(seen[0].context, "Q0");
  EXPECT_EQ(seen[1].continuation, " abcdef");
  // Length in characters, not bytes: a 2-byte character counts once.
  std::vector<ChoiceItem> accented{{"Q", {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", "ab"}, 0}};
  auto by_chars = score_choices(accented, accented, true, {}, [](const std::vector<LoglikelihoodRequest>& r) {
    return std::vector<double>{-3.0, -1.6};  // -0.75 per char vs -0.8 (per byte it would be -0.375 vs -0.8)
  });
  EXPECT_EQ(by_chars.acc, 0.0);
  EXPECT_EQ(by_chars.acc_norm, 1.0);
}

TEST(MultipleChoice, FewShotContextsAreSeededAndExcludeTheItem) {
  const auto items = toy_items();
  const auto a = few_shot_context(items, 0, items, true, {2, 7});
  EXPECT_EQ(a, few_shot_context(items, 0, items, true, {2, 7}));
  // Both other items, each as "query + ' ' + gold choice", then the query.
  EXPECT_TRUE(a == "Q1 x\n\nQ2 rr\n\nQ0" || a == "Q2 rr\n\nQ1 x\n\nQ0") << a;
  std::set<std::string> orders;
  for (uint64_t seed = 0; seed < 20; ++seed) orders.insert(few_shot_context(items, 0, items, true, {2, seed}));
  EXPECT_EQ(orders.size(), 2u);  // seeds change the draw
  EXPECT_THROW(few_shot_context(items, 0, items, true, {3, 1}), UsageError);
  // A separate pool may hold the item itself.
  EXPECT_EQ(few_shot_context(items, 0, {items[0]}, false, {1, 1}), "Q0 abcdef\n\nQ0");
}

TEST(MultipleChoice, SeedsAreAveragedWithSampleStd) {
  const auto items = toy_items();
  // A scorer whose answer depends on the shots: right on item 0 only when its context starts with Q1.
  LoglikelihoodFn scorer = [](const std::vector<LoglikelihoodRequest>& requests) {
    std::vector<double> out;
    for (const auto& r : requests) {
      const bool first_choice = r.continuation == " ab" || r.continuation == " x" || r.continuation == " p";
      const bool lucky = r.context.rfind("Q1", 0) == 0;
      out.push_back(first_choice == lucky ? -1.0 : -50.0);
    }
    return out;
  };
  std::vector<uint64_t> seeds{1, 2, 3, 4, 5, 6};
  auto s = score_choices_over_seeds(items, items, true, 1, seeds, scorer);
  ASSERT_EQ(s.per_seed.size(), 6u);
  double mean = 0, sq = 0;
  for (const auto& p : s.per_seed) mean += p.acc / 6;
  for (const auto& p : s.per_seed) sq += (p.acc - mean) * (p.acc - mean);
  EXPECT_NEAR(s.acc_mean, mean, 1e-12);
  EXPECT_NEAR(s.acc_std, std::sqrt(sq / 5), 1e-12);
  EXPECT_GT(s.acc_std, 0);  // the seeds really drew different shots
}

TEST(MultipleChoice, ReadsTheJsonlFormat) {
  test::TempDir dir;
  std::ofstream(dir / "items.jsonl") << "{\"query\": \"Q\", \"choices\": [\"a\", \"b\"], \"gold\": 1}\n\n"
                                        "{\"query\": \"R\", \"choices\": [\"c\", \"d\", \"e\"], \"gold\": 2}\n";
  auto items = read_choice_items((dir / "items.jsonl").string());
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[1].choices[2], "e");
  std::ofstream(dir / "bad.jsonl") << "{\"query\": \"Q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n";
  EXPECT_THROW(read_choice_items((dir / "bad.jsonl").string()), UsageError);
}

TEST(ChoiceConversion, PiqaHellaswagAndArcRecords) {
  auto piqa = convert_choice_record(
      "piqa", nlohmann::json::parse(R"({"goal": "Open a jar", "sol1": "twist", "sol2": "smash", "label": 0})"));
  EXPECT_EQ(piqa.query, "Question: Open a jar\nAnswer:");
  EXPECT_EQ(piqa.choices, (std::vector<std::string>{"twist", "smash"}));
  EXPECT_EQ(piqa.gold, 0);
  auto hs = convert_choice_record("hellaswag", nlohmann::json::parse(R"({
      "activity_label": "Baking cookies", "ctx_a": "A woman mixes flour [header] in a bowl.",
      "ctx_b": "SHE then", "endings": ["adds eggs [title] Stir well.", "  leaves  the room."], "label": "1"})"));
  EXPECT_EQ(hs.query, "Baking cookies: A woman mixes flour in a bowl. She then");
  EXPECT_EQ(hs.choices, (std::vector<std::string>{"adds eggs. Stir well.", "leaves the room."}));
  EXPECT_EQ(hs.gold, 1);
  EXPECT_EQ(hellaswag_preprocess("a   b"), "a  b");  // one pass of replace("  ", " ")
  auto arc = convert_choice_record("arc", nlohmann::json::parse(R"({"question": "Why?",
      "choices": {"text": ["one", "two", "three"], "label": ["A", "B", "C"]}, "answerKey": "C"})"));
  EXPECT_EQ(arc.query, "Question: Why?\nAnswer:");
  EXPECT_EQ(arc.gold, 2);
  EXPECT_THROW(convert_choice_record("arc", nlohmann::json::parse(R"({"question": "Why?",
      "choices": {"text": ["one"], "label": ["A"]}, "answerKey": "D"})")), UsageError);
  EXPECT_THROW(convert_choice_record("boolq", nlohmann::json::object()), UsageError);
}

// lm-eval's request split: trailing context whitespace moves to the continuation.
TEST(ModelLoglikelihood, RequestsAreSplitAsLmEvalDoes) {
  EncodeFn bytes = [](const std::string& s) {
    std::vector<int64_t> ids;
    for (unsigned char c : s) ids.push_back(c);
    return ids;
  };
  auto r = encode_request({"Hi ", "there"}, bytes, 0);
  EXPECT_EQ(r.context, bytes("Hi"));
  EXPECT_EQ(r.continuation, bytes(" there"));
  auto empty = encode_request({"", "x"}, bytes, 7);
  EXPECT_EQ(empty.context, (std::vector<int64_t>{7}));
  // The model's log-likelihood of a continuation is the sum of its tokens' log-probabilities.
  auto m = test::tiny_model(31, 256);
  model::ForwardOptions o;
  auto ll = model_loglikelihood(m, bytes, 0, 64, o);
  const auto two = ll({{"ab", "cd"}, {"ab", "c"}, {"abc", "d"}});
  EXPECT_NEAR(two[0], two[1] + two[2], 1e-6);
  EXPECT_LT(two[0], 0);
}

}  // namespace
}  // namespace ssa::eval
