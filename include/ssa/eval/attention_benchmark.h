// `ssa bench attention`: dense causal attention (cuDNN and FlashAttention-2 through LibTorch's
// SDPA) against the block-sparse kernels, forward and forward+backward, on one GPU in one
// process so that the ratios hold on a noisy machine. The implementation needs a CUDA build.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ssa::eval {

struct AttentionBenchmarkOptions {
  std::vector<int64_t> lengths{4096, 8192, 16384, 32768, 65536};
  int64_t tokens = 32768;  // batch = max(1, tokens / length)
  // Query and KV head counts of the shapes measured (head_dim 64): Llama-3.2-1B and the paper's.
  std::vector<int64_t> kv_heads{8, 2};
  int64_t q_heads = 32;
  int64_t head_dim = 64;
  // Sparse budgets as block size x blocks.
  std::vector<int64_t> block_sizes{16, 16, 64};
  std::vector<int64_t> topks{16, 64, 16};
  std::string selection = "group";
  int warmup = 3;
  int repeats = 10;
  bool dense = true;  // measure the cuDNN and FlashAttention-2 baselines
  std::string out;    // JSON path; empty for none
  std::string command;  // the command line, recorded in the JSON
};

// Runs on the current CUDA device; prints a Markdown table to stdout and writes the JSON.
void run_attention_benchmark(const AttentionBenchmarkOptions& options);

}  // namespace ssa::eval
