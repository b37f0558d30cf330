// Kept attention results (attention/kept_attention.h) on CUDA: each fused op (cuDNN, FlashAttention's
// varlen kernel, the block-sparse kernels) stores its results in a first run without autograd and
// takes them, instead of attending, in a second run with autograd, whose gradients are those of a
// plain run; and a checkpointed training forward that keeps them gives the loss and gradients of one
// that recomputes them and of one without checkpointing.
#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <functional>
#include <iostream>

#include "kernel_test_util.h"
#include "ssa/attention/document_mask.h"
#include "ssa/attention/full_attention.h"
#include "ssa/attention/kept_attention.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/model/llama.h"
#include "ssa/train/train_forward.h"

namespace ssa::test {
namespace {

// Rows of `documents` documents of equal length, as int32 [B, T] starts on the GPU.
torch::Tensor equal_document_starts(int64_t B, int64_t T, int64_t documents) {
  const int64_t length = (T + documents - 1) / documents;
  auto positions = torch::arange(T, torch::kInt64).remainder(length).unsqueeze(0).expand({B, T}).contiguous();
  return attention::document_starts(positions).to(torch::kCUDA);
}

using Attend = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                           attention::KeptAttention*)>;

TEST(KeptAttentionCuda, EachFusedOpTakesWhatItsFirstRunKept) {
  SSA_REQUIRE_CUDA();
  const KernelCase c{2, 640, 8, 2, 64, 16, 8, true};
  const auto starts = equal_document_starts(c.batch, c.length, 3);
  const auto spans = attention::document_spans(starts);
  // Each op with the names it may keep under: dense rows go to cuDNN or FlashAttention, whichever
  // SDPA picks.
  struct Op {
    std::string name;
    std::vector<std::string> kept_as;
    Attend attend;
  };
  const std::vector<Op> ops{
      {"dense", {"cudnn", "flash"},
       [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, attention::KeptAttention* kept) {
         return attention::full_attention(q, k, v, attention::Backend::kAuto, 128, {}, {}, kept);
       }},
      {"FlashAttention varlen", {"flash"},
       [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, attention::KeptAttention* kept) {
         return attention::full_attention(q, k, v, attention::Backend::kAuto, 128, starts, spans, kept);
       }},
      {"block-sparse", {"sparse"},
       [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, attention::KeptAttention* kept) {
         const auto selection = attention::route_blocks(q.detach(), k.detach(), c.spec(), attention::Backend::kCuda,
                                                        128, starts);
         return attention::sparse_attention(q, k, v, c.spec(), attention::Backend::kCuda, 128, selection, starts,
                                            kept);
       }}};
  for (const auto& [name, kept_as, attend] : ops) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(name + ", seed " + std::to_string(seed));
    const Inputs in = random_inputs(c, seed);
    auto leaves = [&] {
      return std::vector<torch::Tensor>{in.q.clone().requires_grad_(true), in.k.clone().requires_grad_(true),
                                        in.v.clone().requires_grad_(true)};
    };

    auto plain = leaves();
    const auto plain_out = attend(plain[0], plain[1], plain[2], nullptr);
    plain_out.backward(in.grad_out);

    attention::KeptAttention kept;
    torch::Tensor first;
    {
      torch::NoGradGuard no_grad;
      first = attend(in.q, in.k, in.v, &kept);
    }
    ASSERT_FALSE(kept.tensors.empty()) << "the first run keeps its results";
    EXPECT_NE(std::find(kept_as.begin(), kept_as.end(), kept.op), kept_as.end()) << "kept by " << kept.op;
    std::cout << "    " << name << ": kept by " << kept.op << "\n";
    EXPECT_TRUE(torch::equal(first, plain_out.detach()));
    auto second_leaves = leaves();
    const auto second = attend(second_leaves[0], second_leaves[1], second_leaves[2], &kept);
    EXPECT_TRUE(kept.tensors.empty()) << "the second run takes them";
    EXPECT_TRUE(torch::equal(second.detach(), first));
    second.backward(in.grad_out);
    for (size_t i = 0; i < 3; ++i) {
      expect_close(std::string("d") + "qkv"[i], second_leaves[i].grad(), plain[i].grad(), 2e-3, 1e-2);
    }

    // What the second run returns is what was kept, not a new attention.
    {
      torch::NoGradGuard no_grad;
      attend(in.q, in.k, in.v, &kept);
    }
    ASSERT_FALSE(kept.tensors.empty());
    kept.tensors[0] = torch::zeros_like(kept.tensors[0]);
    EXPECT_EQ(attend(in.q, in.k, in.v, &kept).abs().max().item<float>(), 0.f);

    // Results kept by another op are dropped: this one attends and keeps nothing.
    {
      torch::NoGradGuard no_grad;
      attend(in.q, in.k, in.v, &kept);
    }
    kept.op = "another op";
    EXPECT_TRUE(torch::equal(attend(in.q, in.k, in.v, &kept), first));
    EXPECT_TRUE(kept.tensors.empty());
  }
}

config::ModelConfig small_model() {
  config::ModelConfig c;
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.vocab_size = 300;
  c.gate = "headwise";
  return c;
}

// The SSA training forward (both streams, documents) with every layer checkpointed, keeping the
// attention results or not, against no checkpointing: same loss, same gradients.
TEST(KeptAttentionCuda, CheckpointedTrainingForwardMatchesWithAndWithoutKeeping) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  torch::manual_seed(seed);
  model::LlamaForCausalLM model(small_model());
  model->initialize(seed);
  model->to(torch::kCUDA, torch::kBFloat16);
  const int64_t B = 2, T = 384;
  const auto options = torch::TensorOptions().dtype(torch::kInt64).device(torch::kCUDA);
  const auto positions = torch::arange(T, torch::kInt64).remainder(150).unsqueeze(0).expand({B, T}).contiguous();
  const train::MicroBatch batch{torch::randint(0, 300, {B, T}, options), torch::randint(0, 300, {B, T}, options),
                                positions.to(torch::kCUDA), B * T};
  for (const auto mode : {attention::Mode::kFull, attention::Mode::kSparse}) {
    SCOPED_TRACE(attention::mode_name(mode));
    model::ForwardOptions forward_options;
    forward_options.mode = mode;
    forward_options.dual_stream = true;
    forward_options.sparse = {16, 4, attention::Selection::kGroup};
    forward_options.document_mask = true;

    struct Run {
      double loss = 0;
      std::vector<torch::Tensor> grads;
    };
    auto run = [&](const std::string& checkpointing, bool keep_attention) {
      train::TrainForward forward(model, checkpointing, 1, keep_attention);
      const auto loss = forward(batch, forward_options);
      const auto total = loss.ce_sum / static_cast<double>(B * T) + loss.align * 10.0;
      model->zero_grad();
      total.backward();
      Run r;
      r.loss = total.item<double>();
      for (const auto& p : model->parameters()) r.grads.push_back(p.grad().to(torch::kFloat32).clone());
      return r;
    };
    const Run plain = run("none", true), kept = run("full", true), recomputed = run("full", false);
    EXPECT_NEAR(kept.loss, plain.loss, 1e-3 * std::abs(plain.loss));
    EXPECT_NEAR(recomputed.loss, plain.loss, 1e-3 * std::abs(plain.loss));
    for (size_t i = 0; i < plain.grads.size(); ++i) {
      SCOPED_TRACE("parameter " + std::to_string(i));
      EXPECT_LE(relative_error(kept.grads[i], plain.grads[i]), 2e-2);
      EXPECT_LE(relative_error(kept.grads[i], recomputed.grads[i]), 2e-2);
    }
  }
}

}  // namespace
}  // namespace ssa::test
