#include "ssa/eval/multiple_choice.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "ssa/util/error.h"

namespace ssa::eval {
namespace {

constexpr const char* kFewShotDelimiter = "\n\n";
constexpr const char* kTargetDelimiter = " ";

double mean(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v;
  return x.empty() ? 0 : s / static_cast<double>(x.size());
}

double sample_std(const std::vector<double>& x) {
  if (x.size() < 2) return 0;
  const double m = mean(x);
  double s = 0;
  for (double v : x) s += (v - m) * (v - m);
  return std::sqrt(s / static_cast<double>(x.size() - 1));
}

int64_t argmax(const std::vector<double>& x) {
  int64_t best = 0;
  for (int64_t i = 1; i < static_cast<int64_t>(x.size()); ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

}  // namespace

int64_t count_characters(const std::string& text) {
  int64_t n = 0;
  for (unsigned char c : text) n += (c & 0xc0) != 0x80;  // every byte but continuation bytes starts one
  return n;
}

std::vector<ChoiceItem> read_choice_items(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError("cannot open multiple-choice file " + path);
  std::vector<ChoiceItem> items;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    try {
      const auto j = nlohmann::json::parse(line);
      ChoiceItem item;
      item.query = j.at("query").get<std::string>();
      item.choices = j.at("choices").get<std::vector<std::string>>();
      item.gold = j.at("gold").get<int64_t>();
      if (item.choices.size() < 2) throw UsageError(where + ": an item needs at least two choices");
      if (item.gold < 0 || item.gold >= static_cast<int64_t>(item.choices.size())) {
        throw UsageError(where + ": gold " + std::to_string(item.gold) + " is not a choice index");
      }
      items.push_back(std::move(item));
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(where + ": not an item {\"query\", \"choices\", \"gold\"}: " + e.what());
    }
  }
  if (items.empty()) throw UsageError(path + " holds no multiple-choice items");
  return items;
}

std::string few_shot_context(const std::vector<ChoiceItem>& items, int64_t index, const std::vector<ChoiceItem>& pool,
                             bool pool_is_items, const FewShotOptions& options) {
  std::string context;
  if (options.shots > 0) {
    std::vector<int64_t> candidates;
    for (int64_t i = 0; i < static_cast<int64_t>(pool.size()); ++i) {
      if (!(pool_is_items && i == index)) candidates.push_back(i);
    }
    if (static_cast<int64_t>(candidates.size()) < options.shots) {
      throw UsageError("few-shot: " + std::to_string(options.shots) + " shots need that many other items, the pool has " +
                       std::to_string(candidates.size()));
    }
    // mt19937_64 and a modulo draw are fully specified, so the shots are the same on every platform
    // (std::uniform_int_distribution is not).
    std::seed_seq seq{static_cast<uint32_t>(options.seed), static_cast<uint32_t>(options.seed >> 32),
                      static_cast<uint32_t>(index)};
    std::mt19937_64 rng(seq);
    for (int64_t s = 0; s < options.shots; ++s) {  // partial Fisher-Yates
      const int64_t j = s + static_cast<int64_t>(rng() % static_cast<uint64_t>(candidates.size() - s));
      std::swap(candidates[s], candidates[j]);
      const auto& shot = pool[candidates[s]];
      context += shot.query + kTargetDelimiter + shot.choices[shot.gold] + kFewShotDelimiter;
    }
  }
  return context + items[index].query;
}

ChoiceScores score_choices(const std::vector<ChoiceItem>& items, const std::vector<ChoiceItem>& pool,
                           bool pool_is_items, const FewShotOptions& options, const LoglikelihoodFn& loglikelihood) {
  std::vector<LoglikelihoodRequest> requests;
  for (int64_t i = 0; i < static_cast<int64_t>(items.size()); ++i) {
    const std::string context = few_shot_context(items, i, pool, pool_is_items, options);
    for (const auto& choice : items[i].choices) requests.push_back({context, kTargetDelimiter + choice});
  }
  const auto ll = loglikelihood(requests);
  if (ll.size() != requests.size()) throw std::logic_error("log-likelihood function returned the wrong count");
  ChoiceScores scores;
  size_t next = 0;
  for (const auto& item : items) {
    std::vector<double> raw, normalised;
    for (const auto& choice : item.choices) {
      raw.push_back(ll[next++]);
      normalised.push_back(raw.back() / static_cast<double>(std::max<int64_t>(1, count_characters(choice))));
    }
    scores.acc += argmax(raw) == item.gold;
    scores.acc_norm += argmax(normalised) == item.gold;
  }
  scores.items = static_cast<int64_t>(items.size());
  scores.acc /= static_cast<double>(items.size());
  scores.acc_norm /= static_cast<double>(items.size());
  return scores;
}

SeedAveragedScores score_choices_over_seeds(const std::vector<ChoiceItem>& items, const std::vector<ChoiceItem>& pool,
                                            bool pool_is_items, int64_t shots, const std::vector<uint64_t>& seeds,
                                            const LoglikelihoodFn& loglikelihood) {
  if (seeds.empty()) throw UsageError("multiple choice: give at least one seed");
  SeedAveragedScores out;
  std::vector<double> acc, acc_norm;
  for (uint64_t seed : seeds) {
    out.per_seed.push_back(score_choices(items, pool, pool_is_items, {shots, seed}, loglikelihood));
    acc.push_back(out.per_seed.back().acc);
    acc_norm.push_back(out.per_seed.back().acc_norm);
  }
  out.acc_mean = mean(acc);
  out.acc_std = sample_std(acc);
  out.acc_norm_mean = mean(acc_norm);
  out.acc_norm_std = sample_std(acc_norm);
  return out;
}

}  // namespace ssa::eval
