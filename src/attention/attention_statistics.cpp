#include "ssa/attention/attention_statistics.h"

#include <cmath>
#include <limits>

#include "ssa/attention/document_mask.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

// [B, Hkv, G, n] per chunk -> [B, n, Hq].
torch::Tensor per_position(const torch::Tensor& x) {
  return x.reshape({x.size(0), x.size(1) * x.size(2), x.size(3)}).permute({0, 2, 1});
}

}  // namespace

AttentionStatistics attention_statistics(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const SparseSpec& spec, int64_t query_chunk, const torch::Tensor& selection,
                                         const torch::Tensor& document_starts) {
  if (q.dim() != 4 || k.dim() != 4 || !k.sizes().equals(v.sizes())) {
    throw UsageError("attention statistics: q must be [batch, length, heads, head_dim], k and v alike");
  }
  check_document_starts(document_starts, q);
  torch::NoGradGuard no_grad;
  const torch::Tensor selected =
      selection.defined() ? selection : select_blocks(q, k, spec, query_chunk, document_starts);
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3), Hkv = k.size(2);
  const int64_t G = Hq / Hkv;
  const int64_t Bs = spec.block_size;
  if (selected.dim() != 4 || selected.size(0) != B || selected.size(1) != T ||
      (selected.size(2) != Hkv && selected.size(2) != Hq)) {
    throw UsageError("attention statistics: the block selection does not match q and k");
  }
  const int64_t H_sel = selected.size(2);
  const auto type = q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const auto index_options = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const double neg_inf = -std::numeric_limits<double>::infinity();

  const auto kh = k.to(type).permute({0, 2, 1, 3}).unsqueeze(2);  // [B, Hkv, 1, T, D]
  const auto vh = v.to(type).permute({0, 2, 1, 3}).unsqueeze(2);
  const auto value_norms = vh.pow(2).sum(-1).sqrt().unsqueeze(-2);  // [B, Hkv, 1, 1, T]

  std::vector<torch::Tensor> sparsity, dropped, entropy, kl, output_error, error_bound;
  for (int64_t t0 = 0; t0 < T; t0 += query_chunk) {
    const int64_t n = std::min(query_chunk, T - t0);
    const int64_t keys = t0 + n;  // causal: later keys carry no mass
    const int64_t blocks = (keys + Bs - 1) / Bs;
    auto key_pos = torch::arange(keys, index_options);
    // Keys a query cannot see (later ones, other documents), [B or 1, 1, 1, n, keys].
    auto hidden = visible_keys(document_starts, t0, n, keys, q.device()).logical_not().unsqueeze(1).unsqueeze(1);

    auto qc = q.narrow(1, t0, n).to(type).permute({0, 2, 1, 3}).reshape({B, Hkv, G, n, D});
    auto scores = torch::matmul(qc, kh.narrow(3, 0, keys).transpose(-1, -2)) * scale;  // [B, Hkv, G, n, keys]
    auto log_p = torch::log_softmax(scores.masked_fill(hidden, neg_inf), -1);
    scores = torch::Tensor();
    auto p = log_p.exp();
    entropy.push_back(per_position(-(p * log_p.masked_fill(hidden, 0.0)).sum(-1)));

    // Token mask of the selected blocks, [B, Hkv, H_sel / Hkv, n, keys]; -1 entries go to a spare
    // column that is dropped.
    auto chosen = selected.narrow(1, t0, n).to(torch::kInt64).permute({0, 2, 1, 3});  // [B, H_sel, n, K]
    chosen = chosen.masked_fill(chosen < 0, blocks);
    auto block_mask =
        torch::zeros({B, H_sel, n, blocks + 1}, index_options.dtype(torch::kBool)).scatter_(-1, chosen, true);
    auto in_selection = block_mask.index_select(-1, torch::div(key_pos, Bs, "floor")).view({B, Hkv, H_sel / Hkv, n, keys});

    // The kept mass in log space: where a query puts almost all its mass outside the selection, the
    // kept probabilities underflow in float32 and -log(sparsity) would read as infinite.
    auto log_kept = torch::logsumexp(log_p.masked_fill(in_selection.logical_not(), neg_inf), -1);  // [B, Hkv, G, n]
    auto kept_mass = log_kept.exp();
    auto dropped_mass = p.masked_fill(in_selection, 0.0).sum(-1);  // invisible tokens have p = 0
    sparsity.push_back(per_position(kept_mass));
    dropped.push_back(per_position(dropped_mass));
    // -log(sparsity), through log1p where sparsity is close to 1 and `dropped` is the precise one.
    kl.push_back(per_position(torch::where(kept_mass < 0.5, -log_kept, -torch::log1p(-dropped_mass))));

    // Sparse attention's distribution: full attention renormalised over the selection.
    auto p_sparse = (log_p - log_kept.unsqueeze(-1)).exp().masked_fill(in_selection.logical_not(), 0.0);
    log_p = torch::Tensor();
    auto values = vh.narrow(3, 0, keys);
    auto o_full = torch::matmul(p, values);
    auto o_sparse = torch::matmul(p_sparse, values);
    output_error.push_back(per_position((o_full - o_sparse).pow(2).sum(-1).sqrt()));
    auto dropped_tokens = in_selection.logical_or(hidden).logical_not();
    auto max_dropped_norm = value_norms.narrow(-1, 0, keys).masked_fill(dropped_tokens.logical_not(), 0.0).amax(-1);
    auto bound = dropped_mass * (max_dropped_norm + o_sparse.pow(2).sum(-1).sqrt());
    error_bound.push_back(per_position(bound));
  }

  AttentionStatistics s;
  if (T == 0) return s;
  s.sparsity = torch::cat(sparsity, 1);
  s.dropped = torch::cat(dropped, 1);
  s.entropy = torch::cat(entropy, 1);
  s.kl = torch::cat(kl, 1);
  s.output_error = torch::cat(output_error, 1);
  s.error_bound = torch::cat(error_bound, 1);
  s.mean_sparsity = s.sparsity.mean().item<double>();
  s.mean_dropped = s.dropped.mean().item<double>();
  s.mean_entropy = s.entropy.mean().item<double>();
  s.mean_kl = s.kl.mean().item<double>();
  s.mean_output_error = s.output_error.mean().item<double>();
  return s;
}

std::vector<AttentionStatistics> model_attention_statistics(model::LlamaForCausalLM& model,
                                                            const torch::Tensor& tokens,
                                                            model::ForwardOptions options) {
  torch::NoGradGuard no_grad;
  std::vector<AttentionStatistics> layers(static_cast<size_t>(model->config().num_layers));
  const SparseSpec spec = options.sparse;
  const int64_t query_chunk = options.query_chunk;
  torch::Tensor starts;
  if (options.document_mask && options.position_ids.defined()) starts = document_starts(options.position_ids);
  options.on_attention_inputs = [&](int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v) {
    layers.at(static_cast<size_t>(layer)) = attention_statistics(q, k, v, spec, query_chunk, {}, starts);
  };
  // Only the forward of the chosen mode is needed, not the alignment loss.
  options.dual_stream = false;
  model->forward(tokens, options);
  return layers;
}

}  // namespace ssa::attention
