// Tiny random Llama models for the evaluation tests.
#pragma once

#include "ssa/model/llama.h"

namespace ssa::test {

inline config::ModelConfig tiny_model_config(int64_t vocab = 97, int64_t heads = 4, int64_t kv_heads = 2) {
  config::ModelConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = 8;
  c.vocab_size = vocab;
  c.eos_token_id = vocab - 1;
  c.bos_token_id = vocab - 2;
  c.gate = "headwise";
  return c;
}

// Weights of std 0.3 rather than 0.02, so that attention is far from uniform and block
// selections differ between queries.
inline model::LlamaForCausalLM tiny_model(uint64_t seed, int64_t vocab = 97, int64_t heads = 4, int64_t kv_heads = 2) {
  auto c = tiny_model_config(vocab, heads, kv_heads);
  c.init_std = 0.3;
  model::LlamaForCausalLM m(c);
  m->initialize(seed);
  m->eval();
  return m;
}

}  // namespace ssa::test
