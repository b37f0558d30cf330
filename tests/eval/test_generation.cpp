#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <set>

#include "eval/tiny_model.h"
#include "ssa/eval/generation.h"
#include "ssa/model/kv_cache.h"

namespace ssa::eval {
namespace {

struct Variant {
  attention::Mode mode;
  attention::Selection selection;
};

const Variant kVariants[] = {{attention::Mode::kFull, attention::Selection::kGroup},
                             {attention::Mode::kSparse, attention::Selection::kGroup},
                             {attention::Mode::kSparse, attention::Selection::kHead}};

model::ForwardOptions options_for(const Variant& variant) {
  model::ForwardOptions o;
  o.mode = variant.mode;
  o.sparse.block_size = 8;
  o.sparse.topk = 2;
  o.sparse.selection = variant.selection;
  o.query_chunk = 16;
  return o;
}

// Prompt, then one token at a time: every hidden state equals the whole-sequence forward's.
TEST(KvCache, IncrementalForwardEqualsWholeSequenceForward) {
  auto m = test::tiny_model(11);
  auto tokens = torch::randint(0, 97, {2, 70}, torch::kInt64);
  for (const auto& variant : kVariants) {
    const auto options = options_for(variant);
    auto expected = m->forward(tokens, options).hidden;
    for (int64_t prompt : {1, 7, 8, 9, 23}) {
      model::KvCache cache;
      std::vector<torch::Tensor> pieces{model::forward_cached(m, tokens.narrow(1, 0, prompt), cache, options)};
      for (int64_t t = prompt; t < 70; t += (t % 3 == 0 ? 2 : 1)) {  // steps of 1 and 2 tokens
        const int64_t n = std::min<int64_t>(t % 3 == 0 ? 2 : 1, 70 - t);
        pieces.push_back(model::forward_cached(m, tokens.narrow(1, t, n), cache, options));
      }
      EXPECT_EQ(cache.length(), 70);
      auto got = torch::cat(pieces, 1);
      EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-5))
          << attention::mode_name(variant.mode) << " prompt " << prompt << " max diff "
          << (got - expected).abs().max().item<double>();
    }
  }
  // Sparse attention with these settings really drops blocks, so the sparse case is not full.
  EXPECT_FALSE(torch::allclose(m->forward(tokens, options_for(kVariants[0])).hidden,
                               m->forward(tokens, options_for(kVariants[1])).hidden, 1e-4, 1e-5));
}

TEST(Generation, KvCacheGenerationEqualsFullRecomputation) {
  auto m = test::tiny_model(12);
  for (const auto& variant : kVariants) {
    const auto forward = options_for(variant);
    for (int64_t prompt_length : {5, 16, 21}) {
      std::vector<int64_t> prompt;
      for (int64_t i = 0; i < prompt_length; ++i) prompt.push_back((i * 37 + 5) % 97);
      for (bool greedy : {true, false}) {
        GenerationOptions o;
        o.max_new_tokens = 40;
        o.mode = forward.mode;
        o.sparse = forward.sparse;
        o.query_chunk = forward.query_chunk;
        o.sampling.greedy = greedy;
        o.sampling.temperature = 0.8;
        o.sampling.top_p = 0.9;
        o.sampling.seed = 3;
        auto cached = generate(m, prompt, o);
        o.use_cache = false;
        auto recomputed = generate(m, prompt, o);
        EXPECT_EQ(cached.size(), 40u);
        EXPECT_EQ(cached, recomputed) << attention::mode_name(variant.mode) << " prompt " << prompt_length
                                      << (greedy ? " greedy" : " sampled");
      }
    }
  }
}

TEST(Generation, StopsAtTheStopToken) {
  auto m = test::tiny_model(13);
  GenerationOptions o;
  o.max_new_tokens = 30;
  auto free_run = generate(m, {1, 2, 3}, o);
  o.stop_token = free_run[4];
  auto stopped = generate(m, {1, 2, 3}, o);
  ASSERT_LE(stopped.size(), 5u);
  EXPECT_EQ(stopped.back(), free_run[4]);
}

TEST(Sampling, GreedyTopPAndSeeds) {
  auto logits = torch::tensor({0.0, 3.0, 1.0, 3.0, -2.0});
  torch::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  SamplingOptions greedy;
  EXPECT_EQ(choose_token(logits, greedy, g), 1);  // lowest id among ties
  // top_p this small keeps only the most likely token(s): the first of the sorted pair.
  SamplingOptions narrow{false, 1.0, 0.01, 0};
  for (int i = 0; i < 20; ++i) {
    const auto t = choose_token(logits, narrow, g);
    EXPECT_TRUE(t == 1 || t == 3);
  }
  // Full nucleus: all tokens are reachable, draws follow the seed.
  SamplingOptions wide{false, 5.0, 1.0, 0};
  std::set<int64_t> seen;
  torch::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(9), g2 = at::make_generator<at::CPUGeneratorImpl>(9);
  for (int i = 0; i < 200; ++i) {
    const auto a = choose_token(logits, wide, g1);
    EXPECT_EQ(a, choose_token(logits, wide, g2));
    seen.insert(a);
  }
  EXPECT_EQ(seen.size(), 5u);
}

}  // namespace
}  // namespace ssa::eval
