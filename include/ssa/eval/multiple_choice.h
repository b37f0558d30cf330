// Multiple-choice tasks scored by log-likelihood, as lm-eval scores PIQA, HellaSwag and ARC.
//
// Item file: JSON Lines, one item per line: {"query": TEXT, "choices": [TEXT, ...], "gold": INDEX}.
// The request for choice c is context = query and continuation = " " + c. With k shots, the
// context is k examples "query + ' ' + gold choice" joined and followed by "\n\n", then the query
// (lm-eval's fewshot_delimiter). mc_convert.h writes this format from the HF datasets.
//   acc      = fraction of items whose highest log-likelihood choice is the gold one
//   acc_norm = the same with each log-likelihood divided by the choice's length in characters
//              (Unicode code points, lm-eval's len(choice)); ties go to the lowest index
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace ssa::eval {

struct ChoiceItem {
  std::string query;
  std::vector<std::string> choices;
  int64_t gold = 0;
};

// Reads the item file; ssa::UsageError names the file and line of a malformed item.
std::vector<ChoiceItem> read_choice_items(const std::string& path);

// One scoring request: the log-likelihood of `continuation` following `context`.
struct LoglikelihoodRequest {
  std::string context, continuation;
};
using LoglikelihoodFn = std::function<std::vector<double>(const std::vector<LoglikelihoodRequest>&)>;

struct FewShotOptions {
  int64_t shots = 0;
  uint64_t seed = 0;
};

// The context of item `index` of `items`, with shots drawn (without repetition) from `pool`,
// excluding item `index` when `pool_is_items`. The draw is a function of (seed, index) only.
std::string few_shot_context(const std::vector<ChoiceItem>& items, int64_t index, const std::vector<ChoiceItem>& pool,
                             bool pool_is_items, const FewShotOptions& options);

struct ChoiceScores {
  double acc = 0, acc_norm = 0;
  int64_t items = 0;
};

// Scores every item once (one few-shot draw).
ChoiceScores score_choices(const std::vector<ChoiceItem>& items, const std::vector<ChoiceItem>& pool,
                           bool pool_is_items, const FewShotOptions& options, const LoglikelihoodFn& loglikelihood);

struct SeedAveragedScores {
  std::vector<ChoiceScores> per_seed;
  double acc_mean = 0, acc_std = 0, acc_norm_mean = 0, acc_norm_std = 0;  // sample std, 0 for one seed
};

SeedAveragedScores score_choices_over_seeds(const std::vector<ChoiceItem>& items, const std::vector<ChoiceItem>& pool,
                                            bool pool_is_items, int64_t shots, const std::vector<uint64_t>& seeds,
                                            const LoglikelihoodFn& loglikelihood);

// Number of Unicode code points of UTF-8 text (malformed bytes count one each).
int64_t count_characters(const std::string& text);

}  // namespace ssa::eval
