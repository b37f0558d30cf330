// The CUDA kernels of block-sparse attention (kernels/block_select.cu, kernels/sparse_attention.cu)
// bound to LibTorch tensors and autograd. Only in CUDA builds (SSA_HAVE_CUDA_KERNELS); the
// dispatch in sparse_attention.cpp falls back to the ATen reference wherever
// sparse_attention_cuda_supports() says no.
#pragma once

#include <tuple>

#include "ssa/attention/attention_spec.h"
#include "ssa/attention/kept_attention.h"
#include "ssa/compat/torch_compat.h"

namespace ssa::attention {

// How the kernels walk the selection (kernels/sparse_attention.h), or chosen by shape. Forward:
// per query row or per key block. Backward: dQ reduced by the key-major kernel (fused) or computed
// per query row (split).
enum class SparseForwardPlan { kAuto, kQueryMajor, kKeyMajor };
enum class SparseBackwardPlan { kAuto, kFused, kSplit };

// True when the kernels cover this call: CUDA bf16 tensors on one device, q [B, T, Hq, D],
// k [B, T, Hkv, D], D 64 or 128, at most 16 query heads per selection, block size 16, 32, 64 or
// 128, at most 64 selected blocks.
bool sparse_attention_cuda_supports(const torch::Tensor& q, const torch::Tensor& k, const SparseSpec& spec);

// Block selection, same contract as select_blocks (document_starts as there): int32
// [B, T, H_sel, K]. Not differentiable.
torch::Tensor select_blocks_cuda(const torch::Tensor& q, const torch::Tensor& k, const SparseSpec& spec,
                                 const torch::Tensor& document_starts = {});

// Attention over `selection` (as from select_blocks_cuda), differentiable in q, k and v, inside
// the documents of `document_starts` (document_mask.h; undefined = one per row). Returns
// [B, T, Hq, D] bf16. `kept`: see kept_attention.h.
torch::Tensor sparse_attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const SparseSpec& spec, const torch::Tensor& selection,
                                    const torch::Tensor& document_starts = {}, KeptAttention* kept = nullptr);

// The two halves without autograd, for tests and benchmarks. The forward returns the output and
// the float32 log-sum-exp [B, T, Hq] (natural log of the scaled scores); the backward returns
// dq, dk, dv.
std::tuple<torch::Tensor, torch::Tensor> sparse_attention_cuda_forward(
    const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const SparseSpec& spec,
    const torch::Tensor& selection, SparseForwardPlan plan = SparseForwardPlan::kAuto,
    const torch::Tensor& document_starts = {});
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> sparse_attention_cuda_backward(
    const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& out,
    const torch::Tensor& lse, const torch::Tensor& grad_out, const SparseSpec& spec, const torch::Tensor& selection,
    SparseBackwardPlan plan = SparseBackwardPlan::kAuto, const torch::Tensor& document_starts = {});

}  // namespace ssa::attention
