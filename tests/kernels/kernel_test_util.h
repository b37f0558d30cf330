// Shared pieces of the CUDA kernel tests: problem shapes, fresh random inputs, error metrics.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <sstream>
#include <string>

#include "ssa/attention/attention_spec.h"
#include "ssa/compat/torch_compat.h"

namespace ssa::test {

struct KernelCase {
  int64_t batch, length, q_heads, kv_heads, head_dim, block_size, topk;
  bool group;

  attention::SparseSpec spec() const {
    return {block_size, topk, group ? attention::Selection::kGroup : attention::Selection::kHead};
  }
  std::string name() const {
    std::ostringstream s;
    s << "B" << batch << "_T" << length << "_H" << q_heads << "x" << kv_heads << "_D" << head_dim << "_Bs"
      << block_size << "_k" << topk << (group ? "_group" : "_head");
    return s.str();
  }
};

inline void PrintTo(const KernelCase& c, std::ostream* os) { *os << c.name(); }

// A fresh seed per call (printed by the caller on failure), so every run draws new inputs.
inline uint64_t fresh_seed() {
  static std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

struct Inputs {
  torch::Tensor q, k, v, grad_out;
};

// bf16 CUDA inputs. Queries are scaled up a little so that softmax rows are not nearly uniform.
inline Inputs random_inputs(const KernelCase& c, uint64_t seed) {
  torch::manual_seed(seed);
  const auto options = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  Inputs in;
  in.q = (torch::randn({c.batch, c.length, c.q_heads, c.head_dim}, options.dtype(torch::kFloat32)) * 1.5)
             .to(torch::kBFloat16);
  in.k = torch::randn({c.batch, c.length, c.kv_heads, c.head_dim}, options);
  in.v = torch::randn({c.batch, c.length, c.kv_heads, c.head_dim}, options);
  in.grad_out = torch::randn({c.batch, c.length, c.q_heads, c.head_dim}, options);
  return in;
}

// ||got - want|| / ||want|| over float64 copies.
inline double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.to(torch::kCPU, torch::kFloat64), w = want.to(torch::kCPU, torch::kFloat64);
  return (g - w).norm().item<double>() / std::max(w.norm().item<double>(), 1e-30);
}

inline double max_abs_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.to(torch::kCPU, torch::kFloat64), w = want.to(torch::kCPU, torch::kFloat64);
  return (g - w).abs().max().item<double>();
}

inline bool all_finite(const torch::Tensor& t) { return torch::isfinite(t.to(torch::kFloat32)).all().item<bool>(); }

#define SSA_REQUIRE_CUDA()                                     \
  do {                                                         \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU"; \
  } while (0)

}  // namespace ssa::test
