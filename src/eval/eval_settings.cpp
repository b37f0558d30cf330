#include "ssa/eval/eval_settings.h"

#include "ssa/util/error.h"

namespace ssa::eval {

std::string EvalSetting::label() const {
  return receptive_field ? std::string(attention::mode_name(mode)) + "-" + std::to_string(*receptive_field)
                         : attention::mode_name(mode);
}

std::vector<EvalSetting> eval_settings(const std::vector<attention::Mode>& modes,
                                       const std::vector<int64_t>& receptive_fields, int64_t block_size,
                                       attention::Selection selection) {
  if (block_size < 1) throw UsageError("--block-size must be positive");
  for (int64_t r : receptive_fields) {
    if (r < block_size || r % block_size != 0) {
      throw UsageError("receptive field " + std::to_string(r) + " is not a positive multiple of the block size " +
                       std::to_string(block_size));
    }
  }
  std::vector<EvalSetting> settings;
  for (auto mode : modes) {
    EvalSetting base;
    base.mode = mode;
    base.sparse.block_size = block_size;
    base.sparse.selection = selection;
    if (mode == attention::Mode::kFull) {
      settings.push_back(base);
      continue;
    }
    if (receptive_fields.empty()) throw UsageError("sparse evaluation needs at least one receptive field");
    for (int64_t r : receptive_fields) {
      EvalSetting s = base;
      s.receptive_field = r;
      s.sparse.topk = r / block_size;
      settings.push_back(s);
    }
  }
  return settings;
}

}  // namespace ssa::eval
