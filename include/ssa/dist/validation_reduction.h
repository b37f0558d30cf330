// Validation in a data-parallel run: each rank evaluates its own rows of the held-out split
// (eval.batches micro-batches per rank); the summed losses and token counts of all ranks give
// the reported values. Every rank must call it, also one without validation rows.
#pragma once

#include <map>
#include <string>

#include "ssa/dist/process_group.h"

namespace ssa::dist {

// `local`: train::validate()'s metrics of this rank (empty when it had no rows).
std::map<std::string, double> combine_validation(ProcessGroup& group, const std::map<std::string, double>& local);

}  // namespace ssa::dist
