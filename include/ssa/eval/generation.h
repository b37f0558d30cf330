// Autoregressive generation under full or block-sparse attention: greedy or temperature + top-p
// (nucleus) sampling from a seed. With the KV cache (the default) the prompt is run once and each
// new token attends to the cached keys and values; without it the whole sequence is recomputed
// every step. Both give the same tokens (tests/eval/test_generation.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ssa/compat/torch_compat.h"
#include "ssa/model/llama.h"

namespace ssa::eval {

struct SamplingOptions {
  bool greedy = true;
  double temperature = 1.0;
  double top_p = 1.0;
  uint64_t seed = 0;
};

struct GenerationOptions {
  int64_t max_new_tokens = 32;
  attention::Mode mode = attention::Mode::kFull;
  attention::SparseSpec sparse;
  attention::Backend backend = attention::Backend::kAuto;
  int64_t query_chunk = 512;
  SamplingOptions sampling;
  std::optional<int64_t> stop_token;  // generation ends after emitting it
  bool use_cache = true;
};

// The new tokens (the prompt not included). The prompt must not be empty.
std::vector<int64_t> generate(model::LlamaForCausalLM& model, const std::vector<int64_t>& prompt,
                              const GenerationOptions& options);

// Picks the next token from float logits [vocab]: argmax when greedy (lowest id among ties), else
// a draw from softmax(logits / temperature) restricted to the smallest set of most likely tokens
// whose probability reaches top_p.
int64_t choose_token(const torch::Tensor& logits, const SamplingOptions& sampling, torch::Generator& generator);

}  // namespace ssa::eval
