#include "ssa/attention/sparse_attention_cuda.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <stdexcept>

#include "block_select.h"
#include "sparse_attention.h"
#include "ssa/attention/document_mask.h"
#include "ssa/compat/kernel_arguments.h"
#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

using compat::bf16_data;

int64_t slots_for(int64_t length, const SparseSpec& spec) {
  return std::min(spec.topk, (length + spec.block_size - 1) / spec.block_size);
}

kernels::SparseAttentionShape attention_shape(const torch::Tensor& q, const torch::Tensor& k, const SparseSpec& spec,
                                              const torch::Tensor& selection) {
  kernels::SparseAttentionShape s;
  s.batch = q.size(0);
  s.length = q.size(1);
  s.q_heads = q.size(2);
  s.kv_heads = k.size(2);
  s.head_dim = q.size(3);
  s.block_size = spec.block_size;
  s.selection_heads = selection.size(2);
  s.slots = selection.size(3);
  return s;
}

// The kernels' document_start pointer: the data of `contiguous_starts` (undefined: nullptr).
const int32_t* starts_data(const torch::Tensor& contiguous_starts) {
  return contiguous_starts.defined() ? contiguous_starts.data_ptr<int32_t>() : nullptr;
}

void require(bool condition, const std::string& message) {
  if (!condition) throw UsageError("sparse attention (CUDA): " + message);
}

void check_tensors(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const SparseSpec& spec,
                   const torch::Tensor& selection) {
  require(sparse_attention_cuda_supports(q, k, spec), "unsupported inputs (see sparse_attention_cuda_supports)");
  require(v.sizes().equals(k.sizes()) && v.is_cuda() && v.scalar_type() == torch::kBFloat16 &&
              v.device() == q.device(),
          "v must be a CUDA bf16 tensor shaped like k on q's device");
  const int64_t h_sel = spec.selection == Selection::kGroup ? k.size(2) : q.size(2);
  const std::vector<int64_t> expected{q.size(0), q.size(1), h_sel, slots_for(q.size(1), spec)};
  require(selection.defined() && selection.scalar_type() == torch::kInt32 && selection.device() == q.device() &&
              selection.sizes().vec() == expected,
          "the selection must be int32 [batch, length, selection heads, " + std::to_string(expected[3]) +
              "] on q's device");
}

// Autograd inputs must be defined tensors: no document masking travels as an empty tensor.
torch::Tensor starts_or_undefined(const torch::Tensor& starts) { return starts.numel() == 0 ? torch::Tensor() : starts; }

// Autograd node: saves the inputs, the output and its log-sum-exp (those two kept with `kept`); the
// selection and the document starts are inputs without gradient.
struct SparseAttentionFunction : public torch::autograd::Function<SparseAttentionFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor q, torch::Tensor k,
                               torch::Tensor v, torch::Tensor selection, torch::Tensor document_starts,
                               int64_t block_size, int64_t topk, bool group, KeptAttention* kept) {
    const SparseSpec spec{block_size, topk, group ? Selection::kGroup : Selection::kHead};
    const auto r = take_or_run(kept, "sparse", [&] {
      auto [out, lse] = sparse_attention_cuda_forward(q, k, v, spec, selection, SparseForwardPlan::kAuto,
                                                      starts_or_undefined(document_starts));
      return std::vector<torch::Tensor>{out, lse};
    });
    const torch::Tensor& out = r[0];
    ctx->save_for_backward({q, k, v, out, r[1], selection, document_starts});
    ctx->saved_data["block_size"] = block_size;
    ctx->saved_data["topk"] = topk;
    ctx->saved_data["group"] = group;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const SparseSpec spec{ctx->saved_data["block_size"].toInt(), ctx->saved_data["topk"].toInt(),
                          ctx->saved_data["group"].toBool() ? Selection::kGroup : Selection::kHead};
    auto [dq, dk, dv] = sparse_attention_cuda_backward(saved[0], saved[1], saved[2], saved[3], saved[4], grads[0],
                                                       spec, saved[5], SparseBackwardPlan::kAuto,
                                                       starts_or_undefined(saved[6]));
    return {dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

bool sparse_attention_cuda_supports(const torch::Tensor& q, const torch::Tensor& k, const SparseSpec& spec) {
  if (!q.defined() || !k.defined() || !q.is_cuda() || !k.is_cuda() || q.device() != k.device()) return false;
  if (q.scalar_type() != torch::kBFloat16 || k.scalar_type() != torch::kBFloat16) return false;
  if (q.dim() != 4 || k.dim() != 4) return false;
  if (q.size(0) != k.size(0) || q.size(1) != k.size(1) || q.size(3) != k.size(3)) return false;
  if (q.size(0) < 1 || q.size(1) < 1) return false;
  if (q.size(3) != 64 && q.size(3) != 128) return false;
  if (k.size(2) < 1 || q.size(2) % k.size(2) != 0) return false;
  const int64_t rows_per_selection = spec.selection == Selection::kGroup ? q.size(2) / k.size(2) : 1;
  if (q.size(2) / k.size(2) > 16 || rows_per_selection > 16) return false;
  if (spec.block_size != 16 && spec.block_size != 32 && spec.block_size != 64 && spec.block_size != 128) return false;
  if (spec.topk < 1 || slots_for(q.size(1), spec) > 64) return false;
  // The kernels offset keys within a sequence in 32 bits.
  if ((q.size(1) + spec.block_size) * k.size(2) * q.size(3) >= (int64_t{1} << 31)) return false;
  return true;
}

torch::Tensor select_blocks_cuda(const torch::Tensor& q_in, const torch::Tensor& k_in, const SparseSpec& spec,
                                 const torch::Tensor& document_starts) {
  require(sparse_attention_cuda_supports(q_in, k_in, spec), "unsupported inputs for block selection");
  check_document_starts(document_starts, q_in);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto q = q_in.contiguous(), k = k_in.contiguous();
  const auto starts = document_starts.defined() ? document_starts.contiguous() : torch::Tensor();
  kernels::BlockSelectShape s;
  s.batch = q.size(0);
  s.length = q.size(1);
  s.q_heads = q.size(2);
  s.kv_heads = k.size(2);
  s.head_dim = q.size(3);
  s.block_size = spec.block_size;
  s.slots = slots_for(s.length, spec);
  s.group = spec.selection == Selection::kGroup;
  const int64_t h_sel = s.group ? s.kv_heads : s.q_heads;
  auto selection = torch::empty({s.batch, s.length, h_sel, s.slots}, q.options().dtype(torch::kInt32));
  auto workspace = torch::empty({static_cast<int64_t>(kernels::block_select_workspace_bytes(s))},
                                q.options().dtype(torch::kUInt8));
  kernels::block_select(bf16_data(q), bf16_data(k), selection.data_ptr<int32_t>(), workspace.data_ptr(), s,
                        at::cuda::getCurrentCUDAStream().stream(), starts_data(starts));
  return selection;
}

std::tuple<torch::Tensor, torch::Tensor> sparse_attention_cuda_forward(const torch::Tensor& q_in,
                                                                       const torch::Tensor& k_in,
                                                                       const torch::Tensor& v_in,
                                                                       const SparseSpec& spec,
                                                                       const torch::Tensor& selection_in,
                                                                       SparseForwardPlan plan,
                                                                       const torch::Tensor& document_starts) {
  check_tensors(q_in, k_in, v_in, spec, selection_in);
  check_document_starts(document_starts, q_in);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  const auto selection = selection_in.contiguous();
  const auto starts = document_starts.defined() ? document_starts.contiguous() : torch::Tensor();
  auto out = torch::empty_like(q);
  auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
  const auto shape = attention_shape(q, k, spec, selection);
  const auto kernel_plan = plan == SparseForwardPlan::kQueryMajor ? kernels::ForwardPlan::kQueryMajor
                           : plan == SparseForwardPlan::kKeyMajor ? kernels::ForwardPlan::kKeyMajor
                                                                  : kernels::ForwardPlan::kAuto;
  const auto bytes = static_cast<int64_t>(kernels::sparse_attention_forward_workspace_bytes(shape, kernel_plan));
  auto workspace = torch::empty({std::max<int64_t>(bytes, 1)}, q.options().dtype(torch::kUInt8));
  kernels::sparse_attention_forward(bf16_data(q), bf16_data(k), bf16_data(v), selection.data_ptr<int32_t>(),
                                    bf16_data(out), lse.data_ptr<float>(), workspace.data_ptr(), shape,
                                    at::cuda::getCurrentCUDAStream().stream(), kernel_plan, starts_data(starts));
  return {out, lse};
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> sparse_attention_cuda_backward(
    const torch::Tensor& q_in, const torch::Tensor& k_in, const torch::Tensor& v_in, const torch::Tensor& out_in,
    const torch::Tensor& lse_in, const torch::Tensor& grad_out_in, const SparseSpec& spec,
    const torch::Tensor& selection_in, SparseBackwardPlan plan, const torch::Tensor& document_starts) {
  check_tensors(q_in, k_in, v_in, spec, selection_in);
  check_document_starts(document_starts, q_in);
  require(out_in.sizes().equals(q_in.sizes()) && grad_out_in.sizes().equals(q_in.sizes()),
          "out and grad_out must be shaped like q");
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  const auto out = out_in.contiguous();
  const auto grad_out = grad_out_in.to(torch::kBFloat16).contiguous();
  const auto lse = lse_in.contiguous();
  const auto selection = selection_in.contiguous();
  const auto starts = document_starts.defined() ? document_starts.contiguous() : torch::Tensor();
  const auto shape = attention_shape(q, k, spec, selection);
  auto dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
  const auto kernel_plan = plan == SparseBackwardPlan::kFused   ? kernels::BackwardPlan::kFused
                           : plan == SparseBackwardPlan::kSplit ? kernels::BackwardPlan::kSplit
                                                                : kernels::BackwardPlan::kAuto;
  auto workspace =
      torch::empty({static_cast<int64_t>(kernels::sparse_attention_backward_workspace_bytes(shape, kernel_plan))},
                   q.options().dtype(torch::kUInt8));
  kernels::sparse_attention_backward(bf16_data(q), bf16_data(k), bf16_data(v), bf16_data(out), bf16_data(grad_out),
                                     lse.data_ptr<float>(), selection.data_ptr<int32_t>(), bf16_data(dq),
                                     bf16_data(dk), bf16_data(dv), workspace.data_ptr(), shape,
                                     at::cuda::getCurrentCUDAStream().stream(), kernel_plan, starts_data(starts));
  return {dq, dk, dv};
}

torch::Tensor sparse_attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const SparseSpec& spec, const torch::Tensor& selection,
                                    const torch::Tensor& document_starts, KeptAttention* kept) {
  const auto starts =
      document_starts.defined() ? document_starts : torch::empty({0}, q.options().dtype(torch::kInt32));
  return SparseAttentionFunction::apply(q, k, v, selection, starts, spec.block_size, spec.topk,
                                        spec.selection == Selection::kGroup, kept);
}

}  // namespace ssa::attention
