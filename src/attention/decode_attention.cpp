// Attention of queries at an offset against cached keys and values (see decode_attention.h).
// select_blocks and sparse_attention_reference take queries and keys of the same length; here the
// queries are the last n of offset+n positions. The rule (block means of complete past blocks,
// `group` softmax-sum or `head` raw-score importance, current block + top k-1 past blocks,
// token-level causal mask) is the one of block_selection.cpp and sparse_attention.cpp, written
// for query positions that start at `offset`; test_decode_attention.cpp proves the equality.
#include "ssa/attention/decode_attention.h"

#include <cmath>
#include <limits>

#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

torch::ScalarType compute_type(const torch::Tensor& q) {
  return q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

void check_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t offset,
                  int64_t query_chunk) {
  if (q.dim() != 4 || k.dim() != 4 || (v.defined() && !k.sizes().equals(v.sizes()))) {
    throw UsageError("cached attention: q must be [batch, new, heads, head_dim], k and v [batch, cached, heads, head_dim]");
  }
  if (q.size(0) != k.size(0) || q.size(3) != k.size(3)) throw UsageError("cached attention: q and k differ in batch or head_dim");
  if (offset < 0 || offset + q.size(1) != k.size(1)) {
    throw UsageError("cached attention: the cache must hold offset + new positions (" + std::to_string(offset) + " + " +
                     std::to_string(q.size(1)) + "), it holds " + std::to_string(k.size(1)));
  }
  if (k.size(2) == 0 || q.size(2) % k.size(2) != 0) {
    throw UsageError("cached attention: query heads not divisible by key/value heads");
  }
  if (query_chunk < 1) throw UsageError("attention.query_chunk must be at least 1");
}

}  // namespace

torch::Tensor full_attention_at(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t offset,
                                int64_t query_chunk) {
  check_inputs(q, k, v, offset, query_chunk);
  torch::NoGradGuard no_grad;
  const int64_t B = q.size(0), n_new = q.size(1), Hq = q.size(2), D = q.size(3), Hkv = k.size(2);
  const int64_t G = Hq / Hkv;
  const auto type = compute_type(q);
  const auto index_options = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  if (n_new == 0) return torch::empty_like(q);
  auto qh = q.to(type).permute({0, 2, 1, 3}).reshape({B, Hkv, G, n_new, D});
  auto kh = k.to(type).permute({0, 2, 1, 3}).unsqueeze(2);  // [B, Hkv, 1, L, D]
  auto vh = v.to(type).permute({0, 2, 1, 3}).unsqueeze(2);
  std::vector<torch::Tensor> chunks;
  for (int64_t t0 = 0; t0 < n_new; t0 += query_chunk) {
    const int64_t n = std::min(query_chunk, n_new - t0);
    const int64_t keys = offset + t0 + n;
    auto scores = torch::matmul(qh.narrow(3, t0, n), kh.narrow(3, 0, keys).transpose(-1, -2)) * scale;
    auto query_pos = torch::arange(offset + t0, offset + t0 + n, index_options);
    auto future = torch::arange(keys, index_options).unsqueeze(0) > query_pos.unsqueeze(1);
    scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
    chunks.push_back(torch::matmul(torch::softmax(scores, -1), vh.narrow(3, 0, keys)));
  }
  return torch::cat(chunks, 3).reshape({B, Hq, n_new, D}).permute({0, 2, 1, 3}).to(q.scalar_type()).contiguous();
}

torch::Tensor select_blocks_at(const torch::Tensor& q, const torch::Tensor& k, int64_t offset, const SparseSpec& spec,
                               int64_t query_chunk) {
  check_inputs(q, k, torch::Tensor(), offset, query_chunk);
  if (spec.block_size < 1 || spec.topk < 1) throw UsageError("attention.block_size and attention.topk must be at least 1");
  torch::NoGradGuard no_grad;
  const int64_t B = q.size(0), n_new = q.size(1), Hq = q.size(2), D = q.size(3), Hkv = k.size(2), L = k.size(1);
  const int64_t G = Hq / Hkv;
  const int64_t Bs = spec.block_size;
  const int64_t K = std::min(spec.topk, (L + Bs - 1) / Bs);
  const int64_t complete_blocks = L / Bs;
  const bool group = spec.selection == Selection::kGroup;
  const int64_t H_sel = group ? Hkv : Hq;
  const auto type = compute_type(q);
  const auto index_options = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const double neg_inf = -std::numeric_limits<double>::infinity();

  auto selection = torch::full({B, n_new, H_sel, K}, -1, index_options.dtype(torch::kInt32));
  if (n_new == 0) return selection;
  // kbar_j over the complete blocks of the cache, [B, Hkv, 1, D, complete_blocks].
  auto block_keys = k.narrow(1, 0, complete_blocks * Bs)
                        .to(type)
                        .view({B, complete_blocks, Bs, Hkv, D})
                        .mean(2)
                        .permute({0, 2, 3, 1})
                        .unsqueeze(2);
  for (int64_t t0 = 0; t0 < n_new; t0 += query_chunk) {
    const int64_t n = std::min(query_chunk, n_new - t0);
    auto positions = torch::arange(offset + t0, offset + t0 + n, index_options);
    auto current = torch::div(positions, Bs, "floor");
    std::vector<torch::Tensor> parts{current.view({1, 1, n, 1}).expand({B, H_sel, n, 1})};
    const int64_t candidates = (offset + t0 + n - 1) / Bs;  // past blocks of the chunk's last query
    const int64_t past_slots = std::min(K - 1, candidates);
    if (past_slots > 0) {
      auto qc = q.narrow(1, t0, n).to(type).permute({0, 2, 1, 3}).reshape({B, Hkv, G, n, D});
      auto scores = torch::matmul(qc, block_keys.narrow(-1, 0, candidates));  // [B, Hkv, G, n, candidates]
      auto not_past = torch::arange(candidates, index_options).unsqueeze(0) >= current.unsqueeze(1);
      torch::Tensor importance;
      if (group) {
        auto p = torch::softmax((scores * scale).masked_fill(not_past, neg_inf), -1).masked_fill(not_past, 0.0);
        importance = p.sum(2);
      } else {
        importance = scores.reshape({B, Hq, n, candidates});
      }
      importance = importance.masked_fill(not_past, neg_inf);
      auto top = torch::topk(importance, past_slots, -1, /*largest=*/true, /*sorted=*/true);
      parts.push_back(std::get<1>(top).masked_fill(std::get<0>(top) == neg_inf, -1));
    }
    if (1 + past_slots < K) parts.push_back(torch::full({B, H_sel, n, K - 1 - past_slots}, -1, index_options));
    selection.narrow(1, t0, n).copy_(torch::cat(parts, -1).permute({0, 2, 1, 3}));
  }
  return selection;
}

torch::Tensor sparse_attention_at(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  int64_t offset, const SparseSpec& spec, int64_t query_chunk,
                                  const torch::Tensor& selection) {
  check_inputs(q, k, v, offset, query_chunk);
  torch::NoGradGuard no_grad;
  const torch::Tensor selected = selection.defined() ? selection : select_blocks_at(q, k, offset, spec, query_chunk);
  const int64_t B = q.size(0), n_new = q.size(1), Hq = q.size(2), D = q.size(3), Hkv = k.size(2), L = k.size(1);
  const int64_t Bs = spec.block_size;
  if (selected.dim() != 4 || selected.size(0) != B || selected.size(1) != n_new ||
      (selected.size(2) != Hkv && selected.size(2) != Hq)) {
    throw UsageError("cached sparse attention: the block selection does not match the queries");
  }
  const int64_t K = selected.size(3), H_sel = selected.size(2);
  const int64_t group = Hq / H_sel, heads_per_kv = H_sel / Hkv;
  const auto type = compute_type(q);
  const auto index_options = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  if (n_new == 0) return torch::empty_like(q);

  // Only the tokens of the selected blocks are gathered, straight from the cache's [B, L, Hkv, D]
  // rows (no copy of the whole cache), so a decoding step costs K blocks, not L tokens.
  const auto key_rows = k.reshape({B * L * Hkv, D});
  const auto value_rows = v.reshape({B * L * Hkv, D});
  const auto kv_head = torch::div(torch::arange(H_sel, index_options), heads_per_kv, "floor").view({1, H_sel, 1, 1});
  const auto batch = torch::arange(B, index_options).view({B, 1, 1, 1});
  const auto offsets = torch::arange(Bs, index_options);
  std::vector<torch::Tensor> chunks;
  for (int64_t t0 = 0; t0 < n_new; t0 += query_chunk) {
    const int64_t n = std::min(query_chunk, n_new - t0);
    auto blocks = selected.narrow(1, t0, n).to(torch::kInt64).permute({0, 2, 1, 3});  // [B, H_sel, n, K]
    auto tokens = (blocks.unsqueeze(-1) * Bs + offsets).reshape({B, H_sel, n, K * Bs});
    // Slots of missing blocks (-1) and of the current block past the cache are masked below.
    auto rows = ((batch * L + tokens.clamp(0, L - 1)) * Hkv + kv_head).reshape({-1});
    auto keys = key_rows.index_select(0, rows).to(type).view({B, H_sel, n, K * Bs, D});
    auto values = value_rows.index_select(0, rows).to(type).view({B, H_sel, n, K * Bs, D});
    auto positions = torch::arange(offset + t0, offset + t0 + n, index_options).view({1, 1, n, 1});
    auto allowed = (blocks >= 0).repeat_interleave(Bs, -1).logical_and(tokens <= positions);
    auto qc = q.narrow(1, t0, n).to(type).permute({0, 2, 1, 3}).reshape({B, H_sel, group, n, D}).transpose(2, 3);
    auto scores = torch::matmul(qc, keys.transpose(-1, -2)) * scale;  // [B, H_sel, n, group, K * Bs]
    scores = scores.masked_fill(allowed.logical_not().unsqueeze(3), -std::numeric_limits<double>::infinity());
    auto out = torch::matmul(torch::softmax(scores, -1), values);
    chunks.push_back(out.permute({0, 2, 1, 3, 4}).reshape({B, n, Hq, D}));
  }
  return torch::cat(chunks, 1).to(q.scalar_type());
}

}  // namespace ssa::attention
