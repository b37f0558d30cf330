#include "ssa/train/model_flops.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace ssa::train {

int64_t matmul_parameters(const config::ModelConfig& m) {
  const int64_t h = m.hidden_size, q = m.num_heads * m.head_dim, kv = m.num_kv_heads * m.head_dim;
  int64_t gate = 0;
  if (m.gate == "headwise") gate = h * m.num_heads;
  if (m.gate == "elementwise") gate = h * q;
  const int64_t attention = h * q + 2 * h * kv + q * h + gate;
  const int64_t mlp = 3 * h * m.intermediate_size;
  return m.num_layers * (attention + mlp) + m.vocab_size * h;
}

double mean_attended_keys(int64_t seq_len, bool sparse, int64_t block_size, int64_t topk) {
  if (seq_len <= 0) return 0.0;
  double sum = 0;
  for (int64_t t = 0; t < seq_len; ++t) {
    if (!sparse) {
      sum += static_cast<double>(t + 1);
    } else {
      // The query's own block up to itself plus up to topk - 1 earlier whole blocks.
      sum += static_cast<double>(t % block_size + 1 + std::min(topk - 1, t / block_size) * block_size);
    }
  }
  return sum / static_cast<double>(seq_len);
}

double training_flops_per_token(const config::Config& c) {
  const auto& m = c.model;
  const double dense = 6.0 * static_cast<double>(matmul_parameters(m));
  // Per layer and attended key: q.k and p.v, 2 FLOPs each per head dimension, times 3 for training.
  const double per_key = 3.0 * 2.0 * 2.0 * static_cast<double>(m.num_heads * m.head_dim) * m.num_layers;
  const int64_t T = c.train.seq_len;
  double keys = 0;
  if (c.ssa.method != "sparse") keys += mean_attended_keys(T, false, 0, 0);
  if (c.ssa.method != "full") keys += mean_attended_keys(T, true, c.attention.block_size, c.attention.topk);
  return dense + per_key * keys;
}

std::optional<double> peak_bf16_flops(const std::string& name) {
  // Dense (not 2:4-sparse) BF16 tensor-core peaks from NVIDIA's data sheets, most specific name
  // first ("H100 PCIe" before "H100", "L40S" before "L4").
  static const std::vector<std::pair<std::string, double>> table = {
      {"H100 PCIe", 756e12}, {"H100", 989e12}, {"H200", 989e12}, {"GH200", 989e12}, {"B200", 2250e12},
      {"A100", 312e12},      {"A800", 312e12}, {"L40S", 362e12}, {"L4", 121e12},
  };
  for (const auto& [key, flops] : table) {
    if (name.find(key) != std::string::npos) return flops;
  }
  return std::nullopt;
}

}  // namespace ssa::train
