#include <gtest/gtest.h>

#include <cmath>

#include "ssa/train/activation_checkpoint.h"
#include "ssa/train/train_step.h"
#include "train/train_fixture.h"

namespace ssa::train {
namespace {

constexpr int64_t kRows = 4, kLen = 32;

config::Config step_config(const std::vector<std::string>& extra) {
  return test::tiny_config("unused-run", "unused-data", extra);
}

// Rows of random tokens with a different number of masked targets per row, so that a
// token-weighted mean differs from a mean of per-row means.
MicroBatch random_rows(uint64_t seed) {
  torch::manual_seed(seed);
  auto tokens = torch::randint(2, test::kTinyVocab, {kRows, kLen + 1}, torch::kInt64);
  MicroBatch b;
  b.inputs = tokens.narrow(1, 0, kLen).clone();
  b.targets = tokens.narrow(1, 1, kLen).clone();
  for (int64_t r = 0; r < kRows; ++r) b.targets[r].narrow(0, 0, 3 * r).fill_(MicroBatch::kIgnoreTarget);
  b.positions = torch::arange(kLen, torch::kInt64).expand({kRows, kLen}).clone();
  b.target_tokens = (b.targets != MicroBatch::kIgnoreTarget).sum().item<int64_t>();
  return b;
}

MicroBatch row(const MicroBatch& b, int64_t r) {
  MicroBatch out{b.inputs.narrow(0, r, 1), b.targets.narrow(0, r, 1), b.positions.narrow(0, r, 1), 0};
  out.target_tokens = (out.targets != MicroBatch::kIgnoreTarget).sum().item<int64_t>();
  return out;
}

struct StepRun {
  StepResult result;
  std::map<std::string, torch::Tensor> state;  // optimizer moments after the step
  model::NamedTensors weights;
};

StepRun one_step(const config::Config& c, const std::vector<MicroBatch>& micro_batches, int64_t micro_total,
             bool poison = false, torch::ScalarType dtype = torch::kFloat32) {
  model::LlamaForCausalLM model(c.model);
  model->initialize(11);
  TrainStep step(c, model, dtype);
  int64_t tokens = 0;
  for (const auto& b : micro_batches) tokens += b.target_tokens;
  StepRun run;
  run.result = step.run(micro_batches, {tokens, micro_total}, 0, 1e-3, poison);
  for (auto& [k, v] : step.optimizer().state_tensors()) run.state[k] = v;
  for (auto& [k, v] : step.weights().masters()) run.weights.emplace_back(k, v.detach().clone());
  return run;
}

void expect_same_gradients(const StepRun& a, const StepRun& b, double tolerance) {
  ASSERT_EQ(a.state.size(), b.state.size());
  for (const auto& [name, tensor] : a.state) {
    if (name.rfind("exp_avg.", 0) != 0) continue;
    EXPECT_TRUE(torch::allclose(tensor, b.state.at(name), 1e-4, tolerance)) << name;
  }
}

TEST(TrainStep, FourMicroBatchesOfOneEqualOneBatchOfFour) {
  // ssa with p_full = 1: both streams and the alignment term, every micro-batch in full mode.
  const auto c = step_config({"ssa.method=ssa", "ssa.p_full=1"});
  const auto batch = random_rows(5);
  const StepRun whole = one_step(c, {batch}, 1);
  const StepRun split = one_step(c, {row(batch, 0), row(batch, 1), row(batch, 2), row(batch, 3)}, 4);
  EXPECT_EQ(whole.result.modes, "F");
  EXPECT_EQ(split.result.modes, "FFFF");
  EXPECT_NEAR(whole.result.ce, split.result.ce, 1e-5);
  EXPECT_NEAR(whole.result.align, split.result.align, 1e-6);
  EXPECT_GT(whole.result.align, 0.0);
  EXPECT_NEAR(whole.result.grad_norm, split.result.grad_norm, 1e-5 * whole.result.grad_norm);
  expect_same_gradients(whole, split, 1e-8);
  EXPECT_EQ(whole.result.target_tokens, batch.target_tokens);
}

TEST(TrainStep, ClippingScalesTheGradientToTheMaximumNorm) {
  const auto batch = random_rows(6);
  const StepRun unclipped = one_step(step_config({"optim.grad_clip=0"}), {batch}, 1);
  const StepRun clipped = one_step(step_config({"optim.grad_clip=0.01"}), {batch}, 1);
  ASSERT_GT(unclipped.result.grad_norm, 0.01);
  EXPECT_DOUBLE_EQ(unclipped.result.clip, 1.0);
  EXPECT_NEAR(clipped.result.clip, 0.01 / unclipped.result.grad_norm, 1e-9);
  EXPECT_NEAR(clipped.result.grad_norm, unclipped.result.grad_norm, 1e-6);  // reported before clipping
  // exp_avg after one step is (1 - beta1) * the gradient the optimizer received.
  double squares = 0;
  for (const auto& [name, m] : clipped.state) {
    if (name.rfind("exp_avg.", 0) != 0) continue;
    EXPECT_TRUE(torch::allclose(m, unclipped.state.at(name) * clipped.result.clip, 1e-4, 1e-10)) << name;
    squares += (m / 0.1).pow(2).sum().item<double>();
  }
  EXPECT_NEAR(std::sqrt(squares), 0.01, 1e-6);
}

TEST(TrainStep, NonFiniteLossSkipsTheUpdate) {
  const auto c = step_config({});
  model::LlamaForCausalLM model(c.model);
  model->initialize(11);
  TrainStep step(c, model, torch::kFloat32);
  std::vector<torch::Tensor> before;
  for (const auto& [k, v] : step.weights().masters()) before.push_back(v.detach().clone());
  const auto batch = random_rows(7);
  const auto poisoned = step.run({batch}, {batch.target_tokens, 1}, 0, 1e-3, /*poison=*/true);
  EXPECT_TRUE(poisoned.skipped);
  EXPECT_TRUE(std::isnan(poisoned.loss));
  EXPECT_EQ(step.optimizer().steps(), 0);
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], step.weights().masters()[i].second));
  // The next step is normal again.
  const auto healthy = step.run({batch}, {batch.target_tokens, 1}, 1, 1e-3);
  EXPECT_FALSE(healthy.skipped);
  EXPECT_TRUE(std::isfinite(healthy.loss));
  EXPECT_EQ(step.optimizer().steps(), 1);
  EXPECT_FALSE(torch::equal(before[0], step.weights().masters()[0].second));
}

TEST(TrainStep, ActivationCheckpointingGivesTheSameGradients) {
  const auto batch = random_rows(8);
  const std::vector<std::string> ssa = {"ssa.method=ssa", "ssa.p_full=0.5"};
  auto with = [&](const std::string& mode) {
    auto extra = ssa;
    extra.push_back("train.activation_checkpointing=" + mode);
    extra.push_back("train.activation_checkpointing_every=2");
    return one_step(step_config(extra), {row(batch, 0), row(batch, 1)}, 2);
  };
  const StepRun none = with("none"), full = with("full"), selective = with("selective");
  EXPECT_EQ(none.result.modes, full.result.modes);
  EXPECT_NEAR(none.result.loss, full.result.loss, 1e-6);
  EXPECT_NEAR(none.result.loss, selective.result.loss, 1e-6);
  EXPECT_NEAR(none.result.grad_norm, full.result.grad_norm, 1e-6 * none.result.grad_norm);
  expect_same_gradients(none, full, 1e-9);
  expect_same_gradients(none, selective, 1e-9);
}

TEST(TrainStep, CheckpointingPolicySelectsLayers) {
  model::LlamaForCausalLM model(step_config({"model.num_layers=5"}).model);
  TrainForward selective(model, "selective", 2), full(model, "full", 2), none(model, "none", 2);
  std::string picked;
  for (int64_t l = 0; l < 5; ++l) picked += selective.checkpointed(l) ? '1' : '0';
  EXPECT_EQ(picked, "10101");
  EXPECT_TRUE(full.checkpointed(3));
  EXPECT_FALSE(none.checkpointed(0));
}

// The training objective (ssa-method.md section 3) through the layer-by-layer training forward
// is the one of the model's own forward: summed CE over kept targets, layer-mean alignment.
TEST(TrainStep, TrainForwardMatchesTheModelForward) {
  const auto c = step_config({"ssa.method=ssa", "ssa.p_full=0.5", "model.num_layers=3"});
  model::LlamaForCausalLM model(c.model);
  model->initialize(5);
  TrainStep step(c, model, torch::kFloat32);
  const auto batch = random_rows(21);
  for (uint64_t counter : {0u, 1u, 2u, 3u}) {
    const auto options = step.forward_options(counter);
    TrainForward forward(model, "none", 1);
    const auto parts = forward(batch, options);
    const auto reference = model->forward(batch.inputs, options);
    ASSERT_EQ(reference.layer_align.size(), 3u);
    EXPECT_TRUE(torch::allclose(parts.align, torch::stack(reference.layer_align).mean(), 1e-5, 1e-7));
    EXPECT_GT(parts.align.item<double>(), 0.0);  // the streams differ: budget < sequence
    auto logits = model->logits(reference.hidden).reshape({-1, test::kTinyVocab});
    auto ce = torch::nn::functional::cross_entropy(
        logits, batch.targets.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(MicroBatch::kIgnoreTarget));
    EXPECT_NEAR(parts.ce_sum.item<double>(), ce.item<double>(), 1e-4 * ce.item<double>());
  }
}

TEST(TrainStep, ModesFollowTheSamplerCounter) {
  const auto c = step_config({"ssa.method=ssa", "ssa.p_full=0.5"});
  model::LlamaForCausalLM model(c.model);
  TrainStep step(c, model, torch::kFloat32);
  const attention::ModeSampler sampler(7, 0.5, false);
  for (uint64_t counter = 0; counter < 16; ++counter) {
    EXPECT_EQ(step.forward_options(counter).layer_modes, sampler.modes(counter, 2));
    EXPECT_TRUE(step.forward_options(counter).dual_stream);
  }
  const auto full = step_config({"ssa.method=full"});
  model::LlamaForCausalLM m2(full.model);
  TrainStep full_step(full, m2, torch::kFloat32);
  EXPECT_FALSE(full_step.forward_options(3).dual_stream);
  EXPECT_EQ(full_step.forward_options(3).mode, attention::Mode::kFull);
}

TEST(TrainStep, Bf16ComputeKeepsFp32Masters) {
  const auto c = step_config({});
  const auto batch = random_rows(9);
  const StepRun fp32 = one_step(c, {batch}, 1);
  const StepRun bf16 = one_step(c, {batch}, 1, false, torch::kBFloat16);
  EXPECT_FALSE(bf16.result.skipped);
  EXPECT_NEAR(bf16.result.loss, fp32.result.loss, 0.05);
  for (const auto& [name, w] : bf16.weights) EXPECT_EQ(w.scalar_type(), torch::kFloat32) << name;
}

// The optimizer writes the bf16 model weights as it updates the masters: after a step of one
// micro-batch (bf16 gradients straight from autograd) and one of two (fp32 sums), the model holds
// the masters rounded to bf16, and the second step moved them.
TEST(TrainStep, Bf16StepsLeaveTheModelAtTheUpdatedMasters) {
  const auto c = step_config({});
  model::LlamaForCausalLM model(c.model);
  model->initialize(11);
  TrainStep step(c, model, torch::kBFloat16);
  const auto batch = random_rows(12);
  const auto expect_published = [&] {
    const auto& masters = step.weights().masters();
    const auto parameters = model->parameters();
    ASSERT_EQ(parameters.size(), masters.size());
    for (size_t i = 0; i < masters.size(); ++i) {
      EXPECT_TRUE(torch::equal(parameters[i], masters[i].second.to(torch::kBFloat16))) << masters[i].first;
    }
  };
  EXPECT_FALSE(step.run({batch}, {batch.target_tokens, 1}, 0, 1e-3, false).skipped);
  expect_published();
  const auto after_first = step.weights().masters().front().second.clone();
  EXPECT_FALSE(step.run({row(batch, 0), row(batch, 1)}, {row(batch, 0).target_tokens + row(batch, 1).target_tokens, 2},
                        1, 1e-3, false)
                   .skipped);
  expect_published();
  EXPECT_FALSE(torch::equal(after_first, step.weights().masters().front().second));
}

}  // namespace
}  // namespace ssa::train

namespace ssa::train {
namespace {

TEST(ActivationCheckpoint, RecomputesTheSegmentInBackward) {
  auto w = torch::tensor({2.0f, 3.0f}, torch::requires_grad());
  int calls = 0;
  const Segment segment = [&](const std::vector<torch::Tensor>& in) {
    ++calls;
    EXPECT_EQ(torch::GradMode::is_enabled(), calls == 2);  // no graph in forward, a graph in backward
    return std::vector<torch::Tensor>{(in[0] * w).sin(), in[0].pow(2)};
  };
  auto x = torch::tensor({0.5f, -1.0f}, torch::requires_grad());
  auto out = checkpoint(segment, {x * 1.0});
  EXPECT_EQ(calls, 1);
  (out[0].sum() + 3 * out[1].sum()).backward();
  EXPECT_EQ(calls, 2);

  auto w2 = w.detach().clone().requires_grad_(true);
  auto x2 = x.detach().clone().requires_grad_(true);
  ((x2 * w2).sin().sum() + 3 * x2.pow(2).sum()).backward();
  EXPECT_TRUE(torch::allclose(x.grad(), x2.grad()));
  EXPECT_TRUE(torch::allclose(w.grad(), w2.grad()));
}

}  // namespace
}  // namespace ssa::train
