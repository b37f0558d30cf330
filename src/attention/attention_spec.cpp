#include "ssa/attention/attention_spec.h"

#include "ssa/util/error.h"

namespace ssa::attention {

Mode parse_mode(const std::string& name) {
  if (name == "full") return Mode::kFull;
  if (name == "sparse") return Mode::kSparse;
  throw UsageError("attention mode '" + name + "' is not one of full | sparse");
}

Selection parse_selection(const std::string& name) {
  if (name == "group") return Selection::kGroup;
  if (name == "head") return Selection::kHead;
  throw UsageError("selection '" + name + "' is not one of group | head");
}

Backend parse_backend(const std::string& name) {
  if (name == "auto") return Backend::kAuto;
  if (name == "reference") return Backend::kReference;
  if (name == "cuda") return Backend::kCuda;
  throw UsageError("attention backend '" + name + "' is not one of auto | reference | cuda");
}

const char* mode_name(Mode mode) { return mode == Mode::kFull ? "full" : "sparse"; }

SparseSpec sparse_spec(const config::AttentionConfig& config) {
  return {config.block_size, config.topk, parse_selection(config.selection)};
}

}  // namespace ssa::attention
