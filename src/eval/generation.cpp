#include "ssa/eval/generation.h"

#include <ATen/CPUGeneratorImpl.h>

#include "ssa/model/kv_cache.h"
#include "ssa/util/error.h"

namespace ssa::eval {

int64_t choose_token(const torch::Tensor& logits, const SamplingOptions& sampling, torch::Generator& generator) {
  // Decisions are made on the CPU in float64 so that a seed gives the same text on any device.
  auto scores = logits.detach().to(torch::kCPU, torch::kFloat64).reshape({-1});
  if (sampling.greedy) return scores.argmax().item<int64_t>();
  if (!(sampling.temperature > 0)) throw UsageError("--temperature must be positive");
  if (!(sampling.top_p > 0 && sampling.top_p <= 1)) throw UsageError("--top-p must be in (0, 1]");
  auto probs = torch::softmax(scores / sampling.temperature, 0);
  auto sorted = torch::sort(probs, 0, /*descending=*/true);
  auto sorted_probs = std::get<0>(sorted);
  auto order = std::get<1>(sorted);
  // Keep token i when the mass before it is below top_p (the most likely token always stays).
  auto before = torch::cumsum(sorted_probs, 0) - sorted_probs;
  auto kept = sorted_probs.masked_fill(before >= sampling.top_p, 0.0);
  auto pick = torch::multinomial(kept / kept.sum(), 1, /*replacement=*/false, generator).item<int64_t>();
  return order[pick].item<int64_t>();
}

std::vector<int64_t> generate(model::LlamaForCausalLM& model, const std::vector<int64_t>& prompt,
                              const GenerationOptions& options) {
  if (prompt.empty()) throw UsageError("generation needs a prompt of at least one token");
  if (options.max_new_tokens < 0) throw UsageError("--max-new-tokens must not be negative");
  torch::NoGradGuard no_grad;
  const auto device = model->output_weight().device();
  torch::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.sampling.seed);
  model::ForwardOptions forward;
  forward.mode = options.mode;
  forward.sparse = options.sparse;
  forward.backend = options.backend;
  forward.query_chunk = options.query_chunk;

  std::vector<int64_t> sequence = prompt;
  std::vector<int64_t> generated;
  model::KvCache cache;
  auto pending = torch::tensor(prompt, torch::kInt64).unsqueeze(0).to(device);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    torch::Tensor last_hidden;
    if (options.use_cache) {
      auto hidden = model::forward_cached(model, pending, cache, forward);
      last_hidden = hidden[0][hidden.size(1) - 1];
    } else {
      auto all = torch::tensor(sequence, torch::kInt64).unsqueeze(0).to(device);
      auto hidden = model->forward(all, forward).hidden;
      last_hidden = hidden[0][hidden.size(1) - 1];
    }
    const int64_t token = choose_token(model->logits(last_hidden), options.sampling, generator);
    generated.push_back(token);
    sequence.push_back(token);
    if (options.stop_token && token == *options.stop_token) break;
    pending = torch::tensor(std::vector<int64_t>{token}, torch::kInt64).unsqueeze(0).to(device);
  }
  return generated;
}

}  // namespace ssa::eval
