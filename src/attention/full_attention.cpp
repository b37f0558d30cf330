#include "ssa/attention/full_attention.h"

#include <cmath>

#include "ssa/attention/document_mask.h"
#include "ssa/attention/fused_full_attention.h"
#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

#if SSA_HAS_SDPA
// Document-masked attention on CUDA: SDPA with an explicit mask, `query_chunk` queries at a time so
// that no [T, T] mask exists. K and V are expanded to the query heads because the memory-efficient
// kernel, the fused one that takes a mask, has no grouped-query support.
torch::Tensor masked_sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t query_chunk,
                          const torch::Tensor& document_starts) {
  const int64_t T = q.size(1), G = q.size(2) / k.size(2);
  const auto qh = q.transpose(1, 2);  // [B, Hq, T, D]
  const auto kh = k.repeat_interleave(G, 2).transpose(1, 2);
  const auto vh = v.repeat_interleave(G, 2).transpose(1, 2);
  std::vector<torch::Tensor> chunks;
  for (int64_t t0 = 0; t0 < T; t0 += query_chunk) {
    const int64_t n = std::min(query_chunk, T - t0);
    const int64_t keys = t0 + n;
    const auto mask = visible_keys(document_starts, t0, n, keys, q.device()).unsqueeze(1);  // [B, 1, n, keys]
    chunks.push_back(at::scaled_dot_product_attention(qh.narrow(2, t0, n), kh.narrow(2, 0, keys),
                                                      vh.narrow(2, 0, keys), mask, 0.0, /*is_causal=*/false));
  }
  return torch::cat(chunks, 2).transpose(1, 2);
}
#endif

}  // namespace

torch::Tensor full_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       int64_t query_chunk, const torch::Tensor& document_starts) {
  check_document_starts(document_starts, q);
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3), Hkv = k.size(2);
  const int64_t G = Hq / Hkv;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  // Low-precision inputs are computed in float32 (as the fused kernels accumulate).
  const auto compute_type = q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto qh = q.to(compute_type).permute({0, 2, 1, 3}).reshape({B, Hkv, G, T, D});
  auto kh = k.to(compute_type).permute({0, 2, 1, 3}).unsqueeze(2);  // [B, Hkv, 1, T, D]
  auto vh = v.to(compute_type).permute({0, 2, 1, 3}).unsqueeze(2);
  std::vector<torch::Tensor> chunks;
  for (int64_t t0 = 0; t0 < T; t0 += query_chunk) {
    const int64_t n = std::min(query_chunk, T - t0);
    const int64_t keys = t0 + n;  // causal: later keys are never needed
    auto scores = torch::matmul(qh.narrow(3, t0, n), kh.narrow(3, 0, keys).transpose(-1, -2)) * scale;
    auto hidden = visible_keys(document_starts, t0, n, keys, q.device()).logical_not().unsqueeze(1).unsqueeze(1);
    scores = scores.masked_fill(hidden, -std::numeric_limits<double>::infinity());
    chunks.push_back(torch::matmul(torch::softmax(scores, -1), vh.narrow(3, 0, keys)));
  }
  auto out = torch::cat(chunks, 3).reshape({B, Hq, T, D}).permute({0, 2, 1, 3});
  return out.to(q.scalar_type()).contiguous();
}

torch::Tensor full_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             Backend backend, int64_t query_chunk, const torch::Tensor& document_starts,
                             [[maybe_unused]] const DocumentSpans& spans, [[maybe_unused]] KeptAttention* kept) {
  if (q.size(2) % k.size(2) != 0) {
    throw UsageError("full attention: query heads " + std::to_string(q.size(2)) +
                     " not divisible by key/value heads " + std::to_string(k.size(2)));
  }
#if SSA_HAS_SDPA
  if (q.is_cuda() && backend != Backend::kReference) {
    check_document_starts(document_starts, q);
    if (const auto kernel = fused_full_attention_kernel(q, k, v, kept); kernel != FusedFullKernel::kNone) {
      const DocumentSpans documents = !document_starts.defined() ? DocumentSpans{}
                                      : spans.offsets.defined()   ? spans
                                                                  : document_spans(document_starts);
      return fused_full_attention(q, k, v, kernel, documents, kept);
    }
    if (document_starts.defined()) return masked_sdpa(q, k, v, query_chunk, document_starts);
    // [B, T, H, D] viewed as [B, H, T, D]: cuDNN takes the strided layout without a copy.
    auto out = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), {}, 0.0,
                                                /*is_causal=*/true, std::nullopt, /*enable_gqa=*/true);
    return out.transpose(1, 2);
  }
#endif
  if (backend == Backend::kCuda) throw UsageError("attention.backend=cuda needs a CUDA build and CUDA tensors");
  return full_attention_reference(q, k, v, query_chunk, document_starts);
}

}  // namespace ssa::attention
