// Attention over the selected blocks (ssa-method.md section 2, steps 5-6): the ATen reference
// path and the dispatch between it and the CUDA kernels.
#include "ssa/attention/sparse_attention.h"

#include <cmath>
#include <limits>

#include "ssa/attention/document_mask.h"
#include "ssa/util/error.h"

#if SSA_HAVE_CUDA_KERNELS
#include "ssa/attention/sparse_attention_cuda.h"
#endif

namespace ssa::attention {
namespace {

void check_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const SparseSpec& spec,
                  int64_t query_chunk) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) {
    throw UsageError("sparse attention: q, k and v must be [batch, length, heads, head_dim]");
  }
  if (!k.sizes().equals(v.sizes())) throw UsageError("sparse attention: k and v differ in shape");
  if (q.size(0) != k.size(0) || q.size(1) != k.size(1) || q.size(3) != k.size(3)) {
    throw UsageError("sparse attention: q and k differ in batch, length or head_dim");
  }
  if (k.size(2) == 0 || q.size(2) % k.size(2) != 0) {
    throw UsageError("sparse attention: query heads " + std::to_string(q.size(2)) +
                     " not divisible by key/value heads " + std::to_string(k.size(2)));
  }
  if (spec.block_size < 1) throw UsageError("attention.block_size must be at least 1");
  if (spec.topk < 1) throw UsageError("attention.topk must be at least 1");
  if (query_chunk < 1) throw UsageError("attention.query_chunk must be at least 1");
}

void check_selection(const torch::Tensor& selection, const torch::Tensor& q, const torch::Tensor& k,
                     const SparseSpec& spec) {
  const int64_t H_sel = spec.selection == Selection::kGroup ? k.size(2) : q.size(2);
  const int64_t num_blocks = (q.size(1) + spec.block_size - 1) / spec.block_size;
  const std::vector<int64_t> expected{q.size(0), q.size(1), H_sel, std::min(spec.topk, num_blocks)};
  if (selection.scalar_type() != torch::kInt32 || selection.sizes().vec() != expected) {
    throw UsageError("sparse attention: the block selection must be int32 [batch, length, selection heads, " +
                     std::to_string(expected[3]) + "] for this spec");
  }
}

// The one dispatch point: whether the CUDA kernels take the call (else the reference path).
bool use_cuda_kernels(const torch::Tensor& q, const torch::Tensor& k, const SparseSpec& spec, Backend backend) {
  if (backend == Backend::kCuda && !q.is_cuda()) {
    throw UsageError("attention.backend=cuda needs CUDA tensors; use auto or reference on the CPU");
  }
#if SSA_HAVE_CUDA_KERNELS
  if (q.is_cuda() && backend != Backend::kReference && sparse_attention_cuda_supports(q, k, spec)) return true;
#endif
  if (backend == Backend::kCuda) {
    throw UsageError("attention.backend=cuda: the CUDA kernels do not cover these inputs (dtype, head_dim, block "
                     "size or group size) or are not built; use auto or reference");
  }
  return false;
}

}  // namespace

torch::Tensor sparse_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const SparseSpec& spec, int64_t query_chunk, const torch::Tensor& selection,
                                         const torch::Tensor& document_starts) {
  check_inputs(q, k, v, spec, query_chunk);
  check_document_starts(document_starts, q);
  const torch::Tensor selected =
      selection.defined() ? selection : select_blocks(q, k, spec, query_chunk, document_starts);
  check_selection(selected, q, k, spec);
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3), Hkv = k.size(2);
  const int64_t Bs = spec.block_size;
  const int64_t num_blocks = (T + Bs - 1) / Bs;
  const int64_t K = selected.size(3);
  // A selection head owns `group` query heads: the KV group for `group`, one head for `head`.
  const int64_t H_sel = selected.size(2);
  const int64_t group = Hq / H_sel;
  const int64_t heads_per_kv = H_sel / Hkv;
  const auto type = q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const auto index_options = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  if (T == 0) return torch::empty_like(q);

  // Keys and values as rows of blocks, [B * Hkv * num_blocks, Bs, D], zero-padded past T (the
  // padding lies in the last block, only ever selected as the current block, where u > t masks it).
  auto as_blocks = [&](const torch::Tensor& x) {
    return torch::constant_pad_nd(x.to(type), {0, 0, 0, 0, 0, num_blocks * Bs - T})
        .view({B, num_blocks, Bs, Hkv, D})
        .permute({0, 3, 1, 2, 4})
        .reshape({B * Hkv * num_blocks, Bs, D});
  };
  const auto key_blocks = as_blocks(k);
  const auto value_blocks = as_blocks(v);
  // Row of block 0 of the KV head of each (batch, selection head), [B, H_sel, 1, 1].
  const auto kv_head = torch::div(torch::arange(H_sel, index_options), heads_per_kv, "floor");
  const auto row_base =
      ((torch::arange(B, index_options).view({B, 1}) * Hkv + kv_head.view({1, H_sel})) * num_blocks).view({B, H_sel, 1, 1});
  const auto offsets = torch::arange(Bs, index_options);

  std::vector<torch::Tensor> chunks;
  for (int64_t t0 = 0; t0 < T; t0 += query_chunk) {
    const int64_t n = std::min(query_chunk, T - t0);
    auto blocks = selected.narrow(1, t0, n).to(torch::kInt64).permute({0, 2, 1, 3});  // [B, H_sel, n, K]
    auto rows = (row_base + blocks.clamp_min(0)).reshape({-1});
    auto keys = key_blocks.index_select(0, rows).view({B, H_sel, n, K * Bs, D});
    auto values = value_blocks.index_select(0, rows).view({B, H_sel, n, K * Bs, D});
    // Token u of each gathered slot; allowed when its block is a real selection, u <= t and u is
    // not before the start of t's document.
    auto tokens = (blocks.unsqueeze(-1) * Bs + offsets).reshape({B, H_sel, n, K * Bs});
    auto positions = torch::arange(t0, t0 + n, index_options).view({1, 1, n, 1});
    auto allowed = (blocks >= 0).repeat_interleave(Bs, -1).logical_and(tokens <= positions);
    if (document_starts.defined()) {
      allowed = allowed.logical_and(tokens >= document_starts.narrow(1, t0, n).to(torch::kInt64).view({B, 1, n, 1}));
    }

    auto qc = q.narrow(1, t0, n).to(type).permute({0, 2, 1, 3}).reshape({B, H_sel, group, n, D}).transpose(2, 3);
    auto scores = torch::matmul(qc, keys.transpose(-1, -2)) * scale;  // [B, H_sel, n, group, K * Bs]
    scores = scores.masked_fill(allowed.logical_not().unsqueeze(3), -std::numeric_limits<double>::infinity());
    auto out = torch::matmul(torch::softmax(scores, -1), values);  // [B, H_sel, n, group, D]
    chunks.push_back(out.permute({0, 2, 1, 3, 4}).reshape({B, n, Hq, D}));
  }
  return torch::cat(chunks, 1).to(q.scalar_type());
}

torch::Tensor route_blocks(const torch::Tensor& q, const torch::Tensor& k, const SparseSpec& spec, Backend backend,
                           int64_t query_chunk, const torch::Tensor& document_starts) {
  [[maybe_unused]] const bool cuda = use_cuda_kernels(q, k, spec, backend);
#if SSA_HAVE_CUDA_KERNELS
  if (cuda) return select_blocks_cuda(q, k, spec, document_starts);
#endif
  return select_blocks(q, k, spec, query_chunk, document_starts);
}

torch::Tensor sparse_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const SparseSpec& spec, Backend backend, int64_t query_chunk,
                               const torch::Tensor& selection, const torch::Tensor& document_starts,
                               [[maybe_unused]] KeptAttention* kept) {
  [[maybe_unused]] const bool cuda = use_cuda_kernels(q, k, spec, backend);
#if SSA_HAVE_CUDA_KERNELS
  if (cuda) {
    check_document_starts(document_starts, q);
    return sparse_attention_cuda(q, k, v, spec,
                                 selection.defined() ? selection : select_blocks_cuda(q, k, spec, document_starts),
                                 document_starts, kept);
  }
#endif
  return sparse_attention_reference(q, k, v, spec, query_chunk, selection, document_starts);
}

}  // namespace ssa::attention
