// MasterWeights in bf16 training: fp32 masters beside a bf16 model, gradient sums that are copied
// into on a step's first micro-batch and added to on later ones (never cleared by a pass over
// memory), and a step of one micro-batch that hands the optimizer the bf16 gradients themselves.
#include <gtest/gtest.h>

#include "ssa/train/master_weights.h"
#include "train/train_fixture.h"

namespace ssa::train {
namespace {

struct Bf16Model {
  model::LlamaForCausalLM model;
  std::unique_ptr<MasterWeights> weights;
  std::vector<torch::Tensor> parameters;

  Bf16Model() : model(test::tiny_config("unused-run", "unused-data", {}).model) {
    model->initialize(5);
    weights = std::make_unique<MasterWeights>(model, torch::kBFloat16);
    parameters = model->parameters();
  }

  // Gradients as a backward pass leaves them: bf16, like the parameters; the first `count` only.
  std::vector<torch::Tensor> set_gradients(uint64_t seed, size_t count) {
    torch::manual_seed(seed);
    std::vector<torch::Tensor> set;
    for (size_t i = 0; i < parameters.size(); ++i) {
      if (i >= count) {
        parameters[i].mutable_grad() = torch::Tensor();
        set.emplace_back();
        continue;
      }
      parameters[i].mutable_grad() = torch::randn(parameters[i].sizes()).to(torch::kBFloat16);
      set.push_back(parameters[i].grad());
    }
    return set;
  }
};

TEST(MasterWeights, OneMicroBatchHandsOverTheBf16Gradients) {
  Bf16Model m;
  const auto set = m.set_gradients(1, m.parameters.size() - 1);
  const auto grads = m.weights->gradients();
  ASSERT_EQ(grads.size(), m.parameters.size());
  for (size_t i = 0; i + 1 < grads.size(); ++i) {
    EXPECT_EQ(grads[i].scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(grads[i].is_same(set[i])) << "a copy where the gradient itself would do";
    EXPECT_FALSE(m.weights->accumulated_gradient(i).defined());
  }
  // The parameter that received no gradient reads as zeros.
  EXPECT_TRUE(torch::equal(grads.back(), torch::zeros_like(m.parameters.back())));
}

TEST(MasterWeights, SumsStartFromTheStepsFirstGradientEveryStep) {
  Bf16Model m;
  const size_t n = m.parameters.size();
  // Step 1: three micro-batches; the last parameter has a gradient only in the second.
  const auto a = m.set_gradients(10, n - 1);
  m.weights->accumulate();
  EXPECT_TRUE(m.weights->accumulated_gradient(0).defined());
  EXPECT_FALSE(m.weights->accumulated_gradient(n - 1).defined());
  const auto b = m.set_gradients(11, n);
  m.weights->accumulate();
  const auto c = m.set_gradients(12, n - 1);
  auto grads = m.weights->gradients();
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(grads[i].scalar_type(), torch::kFloat32) << i;
    auto want = b[i].to(torch::kFloat32);
    if (i + 1 < n) want = a[i].to(torch::kFloat32) + want + c[i].to(torch::kFloat32);
    EXPECT_TRUE(torch::allclose(grads[i], want, 1e-6, 1e-6)) << i;
  }
  m.weights->zero_gradients();
  for (const auto& p : m.parameters) EXPECT_FALSE(p.grad().defined());

  // Step 2, two micro-batches: nothing of step 1 remains in the sums.
  const auto d = m.set_gradients(13, n);
  m.weights->accumulate();
  const auto e = m.set_gradients(14, n);
  grads = m.weights->gradients();
  for (size_t i = 0; i < n; ++i) {
    EXPECT_TRUE(torch::allclose(grads[i], d[i].to(torch::kFloat32) + e[i].to(torch::kFloat32), 1e-6, 1e-6)) << i;
  }
  m.weights->zero_gradients();

  // Step 3, one micro-batch: the bf16 gradients, not the sums of step 2.
  const auto f = m.set_gradients(15, n);
  grads = m.weights->gradients();
  for (size_t i = 0; i < n; ++i) EXPECT_TRUE(grads[i].is_same(f[i])) << i;
}

TEST(MasterWeights, ComputeCopiesAreTheModelsParametersAndPublishFillsThem) {
  Bf16Model m;
  const auto copies = m.weights->compute_copies();
  ASSERT_EQ(copies.size(), m.weights->masters().size());
  for (size_t i = 0; i < copies.size(); ++i) {
    EXPECT_TRUE(copies[i].is_same(m.parameters[i]));
    EXPECT_EQ(copies[i].scalar_type(), torch::kBFloat16);
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, master] : m.weights->masters()) master.add_(1.0);
  m.weights->publish();
  for (size_t i = 0; i < copies.size(); ++i) {
    EXPECT_TRUE(torch::equal(m.parameters[i], m.weights->masters()[i].second.to(torch::kBFloat16)));
  }

  // fp32 training: the masters are the model's parameters, nothing to copy.
  model::LlamaForCausalLM fp32(test::tiny_config("unused-run", "unused-data", {}).model);
  MasterWeights same(fp32, torch::kFloat32);
  EXPECT_TRUE(same.compute_copies().empty());
}

TEST(MasterWeights, DiscardedSumsRefuseAccumulation) {
  Bf16Model m;
  m.weights->discard_gradient_sums();
  m.set_gradients(20, m.parameters.size());
  EXPECT_THROW(m.weights->accumulate(), std::logic_error);
}

}  // namespace
}  // namespace ssa::train
