#include "ssa/attention/document_mask.h"

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "ssa/util/error.h"

namespace ssa::attention {

torch::Tensor document_starts(const torch::Tensor& position_ids) {
  if (position_ids.dim() != 2) throw UsageError("document starts: position ids must be [batch, length]");
  const int64_t T = position_ids.size(1);
  const auto index = torch::arange(T, position_ids.options().dtype(torch::kInt64)).expand(position_ids.sizes());
  auto starts_here = torch::ones(position_ids.sizes(), position_ids.options().dtype(torch::kBool));
  if (T > 1) {
    const auto positions = position_ids.to(torch::kInt64);
    starts_here.narrow(1, 1, T - 1)
        .copy_(positions.narrow(1, 1, T - 1) != positions.narrow(1, 0, T - 1) + 1);
  }
  // Each token takes the latest start at or before it.
  const auto marked = torch::where(starts_here, index, torch::zeros_like(index));
  return std::get<0>(torch::cummax(marked, 1)).to(torch::kInt32).contiguous();
}

void check_document_starts(const torch::Tensor& starts, const torch::Tensor& q) {
  if (!starts.defined()) return;
  if (starts.scalar_type() != torch::kInt32 || starts.dim() != 2 || starts.size(0) != q.size(0) ||
      starts.size(1) != q.size(1) || starts.device() != q.device()) {
    throw UsageError("document starts must be int32 [batch, length] on the device of the queries");
  }
}

torch::Tensor visible_keys(const torch::Tensor& starts, int64_t t0, int64_t n, int64_t keys, torch::Device device) {
  const auto options = torch::TensorOptions().dtype(torch::kInt64).device(device);
  const auto query = torch::arange(t0, t0 + n, options).view({1, n, 1});
  const auto key = torch::arange(keys, options).view({1, 1, keys});
  auto visible = key <= query;
  if (starts.defined()) visible = visible.logical_and(key >= starts.narrow(1, t0, n).to(torch::kInt64).unsqueeze(-1));
  return visible;
}

DocumentSpans document_spans(const torch::Tensor& starts) {
  if (!starts.defined() || starts.dim() != 2 || starts.scalar_type() != torch::kInt32) {
    throw UsageError("document spans: starts must be int32 [batch, length]");
  }
  const auto host = starts.to(torch::kCPU).contiguous();
  const int64_t B = host.size(0), T = host.size(1);
  if (B * T > std::numeric_limits<int32_t>::max()) throw UsageError("document spans: more than 2^31 - 1 tokens");
  const int32_t* start = host.data_ptr<int32_t>();
  std::vector<int32_t> offsets;
  int64_t longest = 0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      const int32_t s = start[b * T + t];
      if (s != t && (t == 0 || s != start[b * T + t - 1])) {
        throw UsageError("document spans: token " + std::to_string(t) + " of row " + std::to_string(b) +
                         " starts its document at " + std::to_string(s) +
                         ", neither itself nor where the token before it starts");
      }
      if (s != t) continue;
      if (!offsets.empty()) longest = std::max<int64_t>(longest, b * T + t - offsets.back());
      offsets.push_back(static_cast<int32_t>(b * T + t));
    }
  }
  if (!offsets.empty()) longest = std::max<int64_t>(longest, B * T - offsets.back());
  offsets.push_back(static_cast<int32_t>(B * T));
  DocumentSpans spans;
  spans.offsets = torch::tensor(offsets, torch::kInt32).to(starts.device());
  spans.longest = longest;
  spans.tokens = B * T;
  return spans;
}

DocumentSpans cuda_document_spans(const torch::Tensor& starts) {
  return starts.defined() && starts.is_cuda() ? document_spans(starts) : DocumentSpans{};
}

}  // namespace ssa::attention
