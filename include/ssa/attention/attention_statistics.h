// How much of the full attention a block selection keeps (ssa-method.md section 5).
//
// For query position t and query head i let p(u) = softmax_{u <= t}(q_i(t) . k_u / sqrt(D)) be the
// full causal attention and S the tokens u <= t of the blocks selected for (t, i) (for `group`
// selection the blocks of i's KV head). The sparse attention of section 2 is p restricted to S
// and renormalised: p_S(u) = p(u) / sparsity for u in S.
//   sparsity = sum_{u in S} p(u)                      (the paper's Definition 1)
//   dropped  = sum_{u <= t, u not in S} p(u)          (delta(t) = 1 - sparsity, summed directly
//                                                      so that small values keep their precision)
//   entropy  = -sum_{u <= t} p(u) log p(u)            (nats, of the full attention)
//   kl       = KL(p_S || p) = sum_{u in S} p_S(u) log(p_S(u) / p(u)) = -log(sparsity)
// The other direction, KL(p || p_S), is infinite whenever mass is dropped (p_S is zero outside S),
// so the finite divergence between the two attention distributions is KL(sparse || full); it is
// 0 exactly when nothing is dropped and grows as -log of the kept mass.
//   output_error = || o_full - o_sparse ||_2          (the attention outputs before the gate)
//   error_bound  = dropped * (max_{u dropped} ||v_u|| + ||o_sparse||)   (the paper's Theorem 1;
//                                                      output_error <= error_bound always)
#pragma once

#include <vector>

#include "ssa/attention/attention_spec.h"
#include "ssa/compat/torch_compat.h"
#include "ssa/model/llama.h"

namespace ssa::attention {

struct AttentionStatistics {
  // Per query position and query head, [B, T, Hq], float32 (float64 for float64 inputs).
  torch::Tensor sparsity, dropped, entropy, kl, output_error, error_bound;
  // Means over batch, positions and heads.
  double mean_sparsity = 0, mean_dropped = 0, mean_entropy = 0, mean_kl = 0, mean_output_error = 0;
};

// Statistics of one layer's post-RoPE q [B, T, Hq, D], k and v [B, T, Hkv, D] for the blocks
// `spec` selects (or `selection`, as returned by select_blocks). Processes `query_chunk` queries
// at a time; inference only (no autograd graph is built). With `document_starts`
// (document_mask.h) the full attention p and the selection stay inside each query's document.
AttentionStatistics attention_statistics(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const SparseSpec& spec, int64_t query_chunk,
                                         const torch::Tensor& selection = {},
                                         const torch::Tensor& document_starts = {});

// Runs `model` on `tokens` [B, T] without gradients in `options.mode` (with its position ids and
// document masking; the dual stream is switched off) and returns the statistics of every layer for
// the selection `options.sparse`, in layer order.
std::vector<AttentionStatistics> model_attention_statistics(model::LlamaForCausalLM& model,
                                                            const torch::Tensor& tokens,
                                                            model::ForwardOptions options);

}  // namespace ssa::attention
