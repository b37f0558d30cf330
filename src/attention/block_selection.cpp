// Block selection of MoBA-style sparse attention (ssa-method.md section 2, steps 1-4).
#include <cmath>
#include <limits>

#include "ssa/attention/document_mask.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

// Scores are computed in float32 (float64 for float64 inputs), whatever the storage type.
torch::ScalarType score_type(const torch::Tensor& q) {
  return q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

void check_inputs(const torch::Tensor& q, const torch::Tensor& k, const SparseSpec& spec, int64_t query_chunk) {
  if (q.dim() != 4 || k.dim() != 4) throw UsageError("block selection: q and k must be [batch, length, heads, head_dim]");
  if (q.size(0) != k.size(0) || q.size(1) != k.size(1) || q.size(3) != k.size(3)) {
    throw UsageError("block selection: q and k differ in batch, length or head_dim");
  }
  if (k.size(2) == 0 || q.size(2) % k.size(2) != 0) {
    throw UsageError("block selection: query heads " + std::to_string(q.size(2)) +
                     " not divisible by key/value heads " + std::to_string(k.size(2)));
  }
  if (spec.block_size < 1) throw UsageError("attention.block_size must be at least 1");
  if (spec.topk < 1) throw UsageError("attention.topk must be at least 1");
  if (query_chunk < 1) throw UsageError("attention.query_chunk must be at least 1");
}

}  // namespace

torch::Tensor select_blocks(const torch::Tensor& q, const torch::Tensor& k, const SparseSpec& spec,
                            int64_t query_chunk, const torch::Tensor& document_starts) {
  check_inputs(q, k, spec, query_chunk);
  check_document_starts(document_starts, q);
  torch::NoGradGuard no_grad;
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3), Hkv = k.size(2);
  const int64_t G = Hq / Hkv;
  const int64_t Bs = spec.block_size;
  const int64_t num_blocks = (T + Bs - 1) / Bs;
  const int64_t complete_blocks = T / Bs;
  const int64_t K = std::min(spec.topk, num_blocks);
  const bool group = spec.selection == Selection::kGroup;
  const int64_t H_sel = group ? Hkv : Hq;
  const auto type = score_type(q);
  const auto index_options = torch::TensorOptions().dtype(torch::kInt64).device(q.device());

  auto selection = torch::full({B, T, H_sel, K}, -1, index_options.dtype(torch::kInt32));
  if (T == 0) return selection;

  // kbar_j: mean of the post-RoPE keys of complete block j, [B, Hkv, 1, D, complete_blocks].
  auto block_keys = k.narrow(1, 0, complete_blocks * Bs)
                        .to(type)
                        .view({B, complete_blocks, Bs, Hkv, D})
                        .mean(2)
                        .permute({0, 2, 3, 1})
                        .unsqueeze(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const double neg_inf = -std::numeric_limits<double>::infinity();

  for (int64_t t0 = 0; t0 < T; t0 += query_chunk) {
    const int64_t n = std::min(query_chunk, T - t0);
    auto positions = torch::arange(t0, t0 + n, index_options);
    auto current = torch::div(positions, Bs, "floor");  // [n]
    auto current_entry = current.view({1, 1, n, 1}).expand({B, H_sel, n, 1});
    // Candidates of the chunk's last query; earlier queries see a prefix of them.
    const int64_t candidates = (t0 + n - 1) / Bs;
    const int64_t past_slots = std::min(K - 1, candidates);
    std::vector<torch::Tensor> parts{current_entry};

    if (past_slots > 0) {
      auto qc = q.narrow(1, t0, n).to(type).permute({0, 2, 1, 3}).reshape({B, Hkv, G, n, D});
      auto scores = torch::matmul(qc, block_keys.narrow(-1, 0, candidates));  // [B, Hkv, G, n, candidates]
      auto block_index = torch::arange(candidates, index_options).view({1, 1, 1, candidates});
      // Blocks that are no candidates: the current block and later ones, and those before the
      // block of the query's document start. [B or 1, 1, n, candidates].
      auto not_past = block_index >= current.view({1, 1, n, 1});
      if (document_starts.defined()) {
        auto first_block = torch::div(document_starts.narrow(1, t0, n).to(torch::kInt64), Bs, "floor");
        not_past = not_past.logical_or(block_index < first_block.view({B, 1, n, 1}));
      }
      torch::Tensor importance;
      if (group) {
        // Per-head softmax over the past blocks, summed over the group. Queries of block 0 have no
        // past block: their rows are all -inf, softmax gives NaN, and the fill below clears it.
        auto p = torch::softmax((scores * scale).masked_fill(not_past.unsqueeze(2), neg_inf), -1)
                     .masked_fill(not_past.unsqueeze(2), 0.0);
        importance = p.sum(2);  // [B, Hkv, n, candidates]
      } else {
        importance = scores.reshape({B, Hq, n, candidates});  // query head h*G+g in [h, g] order
      }
      importance = importance.masked_fill(not_past, neg_inf);
      auto top = torch::topk(importance, past_slots, -1, /*largest=*/true, /*sorted=*/true);
      auto values = std::get<0>(top);
      auto indices = std::get<1>(top);
      parts.push_back(indices.masked_fill(values == neg_inf, -1));
    }
    if (1 + past_slots < K) parts.push_back(torch::full({B, H_sel, n, K - 1 - past_slots}, -1, index_options));
    selection.narrow(1, t0, n).copy_(torch::cat(parts, -1).permute({0, 2, 1, 3}));
  }
  return selection;
}

}  // namespace ssa::attention
