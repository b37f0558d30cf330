#include "ssa/attention/fused_full_attention.h"

#if SSA_HAS_SDPA

#include <optional>
#include <stdexcept>
#include <string>

#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// sdp::SDPBackend numbering (ATen/native/transformers/sdp_utils_cpp.h).
constexpr int64_t kSdpFlash = 1;
constexpr int64_t kSdpCudnn = 3;

// SDPA's choice for these inputs. It depends on whether a backward pass will run, which it will
// for a checkpointed layer's first run too (without autograd, then recomputed with it): both runs
// must take the same op for the second to use what the first kept.
int64_t sdpa_choice(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const KeptAttention* kept) {
  const bool backward = kept != nullptr || q.requires_grad() || k.requires_grad() || v.requires_grad();
  auto heads_first = [backward](const torch::Tensor& x) {
    auto view = x.transpose(1, 2);
    return backward && !view.requires_grad() ? view.detach().requires_grad_(true) : view;
  };
  return at::_fused_sdp_choice(heads_first(q), heads_first(k), heads_first(v), {}, 0.0, /*is_causal=*/true,
                               std::nullopt, /*enable_gqa=*/true);
}

// `grad` with `out`'s strides: both backward ops read the output gradient with the output's.
torch::Tensor in_layout_of(const torch::Tensor& grad, const torch::Tensor& out) {
  if (grad.strides() == out.strides()) return grad;
  auto copy = at::empty_strided(out.sizes(), out.strides(), out.options());
  copy.copy_(grad);
  return copy;
}

// cuDNN on [B, H, T, D] views. Kept: output, log-sum-exp, the (unused) dropout seed and offset.
struct CudnnAttention : public torch::autograd::Function<CudnnAttention> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               KeptAttention* kept) {
    const auto r = take_or_run(kept, "cudnn", [&] {
      auto f = at::_scaled_dot_product_cudnn_attention(q, k, v, std::nullopt, /*compute_log_sumexp=*/true, 0.0,
                                                       /*is_causal=*/true, /*return_debug_mask=*/false);
      return std::vector<torch::Tensor>{std::get<0>(f), std::get<1>(f), std::get<6>(f), std::get<7>(f)};
    });
    ctx->save_for_backward({q, k, v, r[0], r[1], r[2], r[3]});
    return r[0];
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const int64_t T = s[0].size(2);
    auto [dq, dk, dv] = at::_scaled_dot_product_cudnn_attention_backward(
        in_layout_of(grads[0], s[3]), s[0], s[1], s[2], s[3], s[4], s[5], s[6], /*attn_bias=*/torch::Tensor(),
        /*cum_seq_q=*/torch::Tensor(), /*cum_seq_k=*/torch::Tensor(), T, T, 0.0, /*is_causal=*/true);
    return {dq, dk, dv, torch::Tensor()};
  }
};

// FlashAttention-2: q [N, H, D] and k, v [N, Hkv, D] over the documents whose first tokens
// `offsets` lists (then N), or q [B, T, H, D] and k, v [B, T, Hkv, D] when `offsets` is empty.
// Kept: output, log-sum-exp, the (unused) dropout state.
struct FlashAttention : public torch::autograd::Function<FlashAttention> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               torch::Tensor offsets, int64_t longest, KeptAttention* kept) {
    const auto cumulative = offsets.numel() > 0 ? std::optional<torch::Tensor>(offsets) : std::nullopt;
    const auto r = take_or_run(kept, "flash", [&] {
      auto f = at::_flash_attention_forward(q, k, v, cumulative, cumulative, longest, longest, 0.0,
                                            /*is_causal=*/true, /*return_debug_mask=*/false);
      return std::vector<torch::Tensor>{std::get<0>(f), std::get<1>(f), std::get<2>(f), std::get<3>(f)};
    });
    ctx->save_for_backward({q, k, v, r[0], r[1], r[2], r[3], offsets});
    ctx->saved_data["longest"] = longest;
    return r[0];
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const int64_t longest = ctx->saved_data["longest"].toInt();
    const auto cumulative = s[7].numel() > 0 ? s[7] : torch::Tensor();
    auto [dq, dk, dv] = at::_flash_attention_backward(in_layout_of(grads[0], s[3]), s[0], s[1], s[2], s[3], s[4],
                                                      cumulative, cumulative, longest, longest, 0.0,
                                                      /*is_causal=*/true, s[5], s[6]);
    return {dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

FusedFullKernel fused_full_attention_kernel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            const KeptAttention* kept) {
  if (!q.is_cuda() || q.dim() != 4 || q.size(3) % 8 != 0 || q.size(3) > 256) return FusedFullKernel::kNone;
  const int64_t choice = sdpa_choice(q, k, v, kept);
  if (choice == kSdpCudnn) return FusedFullKernel::kCudnn;
  return choice == kSdpFlash ? FusedFullKernel::kFlash : FusedFullKernel::kNone;
}

torch::Tensor fused_full_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   FusedFullKernel kernel, const DocumentSpans& spans, KeptAttention* kept) {
  if (kernel == FusedFullKernel::kNone) throw std::invalid_argument("fused_full_attention: no kernel chosen");
  const int64_t B = q.size(0), T = q.size(1);
  if (spans.offsets.defined() && (spans.tokens != B * T || spans.offsets.device() != q.device())) {
    throw UsageError("full attention: document spans of " + std::to_string(spans.tokens) + " tokens on " +
                     spans.offsets.device().str() + " for queries of " + std::to_string(B * T) + " tokens on " +
                     q.device().str());
  }
  if (spans.documents() <= B) {  // one document per row: plain causal attention
    if (kernel == FusedFullKernel::kCudnn) {
      return CudnnAttention::apply(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), kept).transpose(1, 2);
    }
    const auto no_offsets = torch::empty({0}, q.options().dtype(torch::kInt32));
    return FlashAttention::apply(q, k, v, no_offsets, T, kept);
  }
  auto tokens = [](const torch::Tensor& x) { return x.reshape({-1, x.size(2), x.size(3)}); };
  return FlashAttention::apply(tokens(q), tokens(k), tokens(v), spans.offsets, spans.longest, kept).view(q.sizes());
}

}  // namespace ssa::attention

#endif  // SSA_HAS_SDPA
