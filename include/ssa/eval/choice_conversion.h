// Records of the HF datasets to multiple-choice items (multiple_choice.h), with the prompts of
// lm-eval's tasks:
//   piqa       {goal, sol1, sol2, label}            query "Question: {goal}\nAnswer:", choices sol1, sol2
//   hellaswag  {activity_label, ctx_a, ctx_b (or ctx), endings, label}
//              query preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)), choices
//              preprocess(ending); preprocess strips, turns " [title]" into ". ", removes "[...]"
//              and folds double spaces (capitalize: first letter upper, the rest lower, ASCII)
//   arc        {question, choices: {text, label}, answerKey}   (ARC-Easy and ARC-Challenge)
//              query "Question: {question}\nAnswer:", gold = position of answerKey in choices.label
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "ssa/eval/multiple_choice.h"

namespace ssa::eval {

// Throws ssa::UsageError for an unknown format or a record without the format's fields.
ChoiceItem convert_choice_record(const std::string& format, const nlohmann::json& record);

// lm-eval's HellaSwag text cleaning (above).
std::string hellaswag_preprocess(const std::string& text);

}  // namespace ssa::eval
