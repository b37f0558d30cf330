#include "ssa/model/rope.h"

#include <cmath>

#include "ssa/util/error.h"

namespace ssa::model {
namespace {

// 1 / theta^(2i/d) in float32, the same operation order as transformers' default initialiser.
torch::Tensor default_inv_freq(double theta, int64_t dim) {
  auto exponents = torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(dim);
  return 1.0 / torch::pow(torch::scalar_tensor(theta, torch::kFloat32), exponents);
}

torch::Tensor llama3_inv_freq(const config::ModelConfig& c) {
  const auto& s = c.rope_scaling;
  torch::Tensor inv_freq = default_inv_freq(c.rope_theta, c.head_dim);
  const double old_context = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  torch::Tensor wavelen = 2 * M_PI / inv_freq;
  torch::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
  torch::Tensor smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  torch::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
  torch::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return torch::where(medium, smoothed, scaled);
}

double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

RopeParameters yarn_parameters(const config::ModelConfig& c) {
  const auto& s = c.rope_scaling;
  const int64_t dim = c.head_dim;
  const double base = c.rope_theta;
  const double factor = s.factor;
  const double original =
      static_cast<double>(s.original_max_position_embeddings > 0 ? s.original_max_position_embeddings
                                                                 : c.max_position_embeddings);

  double attention_factor;
  if (s.attention_factor) {
    attention_factor = *s.attention_factor;
  } else if (s.mscale && s.mscale_all_dim && *s.mscale != 0 && *s.mscale_all_dim != 0) {
    attention_factor = yarn_mscale(factor, *s.mscale) / yarn_mscale(factor, *s.mscale_all_dim);
  } else {
    attention_factor = yarn_mscale(factor, 1.0);
  }

  auto correction_dim = [&](double rotations) {
    return (dim * std::log(original / (rotations * 2 * M_PI))) / (2 * std::log(base));
  };
  double low = correction_dim(s.beta_fast);
  double high = correction_dim(s.beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // transformers' guard against a zero-width ramp

  auto pos_freqs = torch::pow(torch::scalar_tensor(base, torch::kFloat32),
                              torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(dim));
  auto extrapolation = 1.0 / pos_freqs;
  auto interpolation = 1.0 / (factor * pos_freqs);
  auto ramp = ((torch::arange(dim / 2, torch::kFloat32) - low) / (high - low)).clamp(0, 1);
  auto extrapolation_factor = 1 - ramp;
  RopeParameters p;
  p.inv_freq = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
  p.attention_scaling = attention_factor;
  return p;
}

}  // namespace

RopeParameters rope_parameters(const config::ModelConfig& c) {
  const auto& type = c.rope_scaling.rope_type;
  if (type == "default") return {default_inv_freq(c.rope_theta, c.head_dim), 1.0};
  if (type == "linear") return {default_inv_freq(c.rope_theta, c.head_dim) / c.rope_scaling.factor, 1.0};
  if (type == "llama3") return {llama3_inv_freq(c), 1.0};
  if (type == "yarn") return yarn_parameters(c);
  throw ConfigError("unsupported rope_type '" + type + "'");
}

RopeTables rope_tables(const RopeParameters& parameters, const torch::Tensor& position_ids) {
  auto inv_freq = parameters.inv_freq.to(position_ids.device());
  auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq;  // [B, T, D/2]
  auto emb = torch::cat({freqs, freqs}, -1);
  RopeTables t{emb.cos(), emb.sin()};
  if (parameters.attention_scaling != 1.0) {
    t.cos = t.cos * parameters.attention_scaling;
    t.sin = t.sin * parameters.attention_scaling;
  }
  return t;
}

torch::Tensor apply_rope(const torch::Tensor& x, const RopeTables& tables, bool fused) {
#if SSA_HAVE_CUDA_KERNELS
  if (fused && apply_rope_cuda_supports(x, tables)) return apply_rope_cuda(x, tables);
#endif
  return apply_rope_reference(x, tables);
}

torch::Tensor apply_rope_reference(const torch::Tensor& x, const RopeTables& tables) {
  const int64_t half = x.size(-1) / 2;
  auto cos = tables.cos.to(x.scalar_type()).unsqueeze(2);  // [B, T, 1, D]
  auto sin = tables.sin.to(x.scalar_type()).unsqueeze(2);
  auto rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

}  // namespace ssa::model
