// Markdown views of the results JSON of `ssa eval` (docs/evaluation.md describes the JSON).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace ssa::eval {

// One row per run ("label"), one column per key of the runs' "summary" objects, in order of first
// appearance; numbers with 4 decimals (scientific from 1e6 on), "-" where a run lacks the column.
std::string summary_markdown(const nlohmann::ordered_json& results);

// The needle-in-a-haystack accuracy of one run as depth (rows) x length (columns); empty when the
// run has no "niah" cells.
std::string niah_markdown(const nlohmann::ordered_json& run);

}  // namespace ssa::eval
