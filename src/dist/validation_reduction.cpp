#include "ssa/dist/validation_reduction.h"

#include <cmath>

namespace ssa::dist {

std::map<std::string, double> combine_validation(ProcessGroup& group, const std::map<std::string, double>& local) {
  const auto value = [&](const std::string& key) {
    auto it = local.find(key);
    return it == local.end() ? 0.0 : it->second;
  };
  const double tokens = value("val_tokens");
  const auto sums = group.sum({value("val_loss_full") * tokens, value("val_loss_sparse") * tokens, tokens}, "validation");
  std::map<std::string, double> out;
  if (sums[2] <= 0) return out;
  for (const auto& [name, nll] : {std::pair<std::string, double>{"full", sums[0]}, {"sparse", sums[1]}}) {
    out["val_loss_" + name] = nll / sums[2];
    out["val_ppl_" + name] = std::exp(nll / sums[2]);
  }
  out["val_tokens"] = sums[2];
  return out;
}

}  // namespace ssa::dist
