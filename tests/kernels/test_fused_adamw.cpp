// AdamW through kernels/adamw.cu (optim.fused, see train/adamw.h) against the per-tensor ATen
// update on the same GPU and on CPU copies (the reference): parameters and both moments after
// every step of a short run with changing learning rates, gradient scales and clipping factors, on
// tensors of mixed shapes and weight decay; bf16 gradients and the bf16 compute copies the kernel
// writes (poisoned before); tensors whose data is not 16-byte aligned (the kernel's scalar path)
// and more tensors than one launch takes; and a restore of its state that continues bit for bit.
//
// Tolerances: both paths do the update in float32 with the same scalars, in another order of
// roundings (the kernel contracts products and sums into FMAs), so parameters and moments agree to
// a few float32 ulps per step: 1e-5 relative and 1e-5 of the largest magnitude. The update itself
// (p after - p before) is compared as well, since a wrong update small against the parameters
// would hide under 1e-5: the float32 rounding of p ~ 1 against an update of ~1e-4 gives ~1e-5
// relative, hence 1e-3.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernel_test_util.h"
#include "ssa/train/adamw.h"

namespace ssa::test {
namespace {

constexpr double kStateTolerance = 1e-5;   // parameters and moments: relative, and of the largest entry
constexpr double kUpdateTolerance = 1e-3;  // p after - p before, relative

struct ParameterSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool decay;
};

// The Llama-3 vocabulary's embedding (8M values: many chunks of the multi-tensor kernel), a norm
// weight, sizes that are no multiple of the kernel's vector width, and decay mixed across ranks
// (a decayed 1-D tensor, an undecayed 2-D one), so that each of the two fused calls (one per
// weight decay) takes tensors of several shapes.
const std::vector<ParameterSpec> kParameters{
    {"model.embed_tokens.weight", {128256, 64}, true},
    {"model.norm.weight", {2048}, false},
    {"model.layers.0.mlp.up_proj.weight", {17, 33}, false},
    {"bias", {5}, true},
};

const train::AdamWOptions kFused{0.9, 0.95, 1e-8, 0.1, /*fused=*/true};
const train::AdamWOptions kPerTensor{0.9, 0.95, 1e-8, 0.1, /*fused=*/false};

std::vector<bool> decay_flags() {
  std::vector<bool> decay;
  for (const auto& p : kParameters) decay.push_back(p.decay);
  return decay;
}

// float32 CPU starting values: weights at init_std, the norm weight around 1.
std::vector<torch::Tensor> initial_values() {
  std::vector<torch::Tensor> values;
  for (const auto& p : kParameters) {
    values.push_back(p.shape.size() == 1 && p.shape[0] == 2048 ? 1 + 0.1 * torch::randn(p.shape)
                                                               : 0.02 * torch::randn(p.shape));
  }
  return values;
}

model::NamedTensors parameters_on(const std::vector<torch::Tensor>& values, torch::Device device) {
  model::NamedTensors out;
  for (size_t i = 0; i < values.size(); ++i) out.emplace_back(kParameters[i].name, values[i].to(device).clone());
  return out;
}

// float32 CPU gradients of one step, all scaled by `scale` (gradients shrink and grow in training).
std::vector<torch::Tensor> random_gradients(double scale) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : kParameters) grads.push_back(torch::randn(p.shape) * scale);
  return grads;
}

// A private copy for one optimizer: the fused kernel may unscale the gradients it is given in
// place, so callers hand it tensors they do not need afterwards, and no two optimizers share them.
std::vector<torch::Tensor> copies_on(const std::vector<torch::Tensor>& grads, torch::Device device) {
  std::vector<torch::Tensor> out;
  for (const auto& g : grads) out.push_back(g.to(device).clone());
  return out;
}

std::vector<torch::Tensor> snapshot(const model::NamedTensors& parameters) {
  std::vector<torch::Tensor> out;
  for (const auto& [name, p] : parameters) out.push_back(p.detach().to(torch::kCPU, torch::kFloat64, false, true));
  return out;
}

// Relative (norm) error and largest entry error at most kStateTolerance (the latter of the
// reference's largest magnitude). One float64 conversion each: the embedding has 8M entries.
void expect_close_tensors(const std::string& what, const model::NamedTensors& got, const model::NamedTensors& want) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, want[i].first) << what;
    const auto w = want[i].second.to(torch::kCPU, torch::kFloat64);
    const auto diff = got[i].second.to(torch::kCPU, torch::kFloat64) - w;
    const double scale = w.abs().max().item<double>();
    const double rel = diff.norm().item<double>() / std::max(w.norm().item<double>(), 1e-30);
    const double err = diff.abs().max().item<double>();
    EXPECT_LE(rel, kStateTolerance) << what << " " << got[i].first << ": relative error";
    EXPECT_LE(err, kStateTolerance * scale) << what << " " << got[i].first << ": max abs error (max |ref| " << scale
                                            << ")";
  }
}

// The step's update of each parameter, p now - p before, against the reference's.
void expect_same_updates(const std::string& what, const model::NamedTensors& got,
                         const std::vector<torch::Tensor>& got_before, const model::NamedTensors& want,
                         const std::vector<torch::Tensor>& want_before) {
  for (size_t i = 0; i < got.size(); ++i) {
    const auto got_update = got[i].second.to(torch::kCPU, torch::kFloat64) - got_before[i];
    const auto want_update = want[i].second.to(torch::kCPU, torch::kFloat64) - want_before[i];
    EXPECT_GT(want_update.abs().max().item<double>(), 0.0) << what << " " << got[i].first << " did not move";
    EXPECT_LE(relative_error(got_update, want_update), kUpdateTolerance) << what << " " << got[i].first << ": update";
  }
}

// Every test: a GPU and a fresh seed for torch and `rng`, named in every failure.
class FusedAdamW : public ::testing::Test {
 protected:
  void SetUp() override {
    SSA_REQUIRE_CUDA();
    const uint64_t seed = fresh_seed();
    seed_trace_ = std::make_unique<::testing::ScopedTrace>(__FILE__, __LINE__, "seed " + std::to_string(seed));
    torch::manual_seed(seed);
    rng.seed(seed);
  }

  std::mt19937_64 rng;

 private:
  std::unique_ptr<::testing::ScopedTrace> seed_trace_;
};

TEST_F(FusedAdamW, MatchesPerTensorUpdateOnGpuAndCpuOverSixSteps) {
  const auto start = initial_values();
  const auto decay = decay_flags();

  auto fused_p = parameters_on(start, torch::kCUDA), per_tensor_p = parameters_on(start, torch::kCUDA);
  auto cpu_p = parameters_on(start, torch::kCPU);
  train::AdamW fused(fused_p, decay, kFused), per_tensor(per_tensor_p, decay, kPerTensor), cpu(cpu_p, decay, kPerTensor);
  ASSERT_TRUE(fused.fused()) << "CUDA float32 parameters with options.fused take the kernel";
  ASSERT_FALSE(per_tensor.fused());
  ASSERT_FALSE(cpu.fused());

  // Clipping factors (grad_scale) of 1 and below, in the order a run meets them.
  const std::vector<double> grad_scales{1.0, 0.37, 1.0, 0.37, 0.81, 1.0};
  std::uniform_real_distribution<double> log_lr(std::log(5e-4), std::log(3e-3)), log_grad(std::log(1e-3), std::log(10.0));
  for (size_t step = 0; step < grad_scales.size(); ++step) {
    const double lr = std::exp(log_lr(rng));
    const auto grads = random_gradients(std::exp(log_grad(rng)));
    SCOPED_TRACE("step " + std::to_string(step + 1) + ", lr " + std::to_string(lr) + ", grad_scale " +
                 std::to_string(grad_scales[step]));
    const auto fused_before = snapshot(fused_p), cpu_before = snapshot(cpu_p), per_tensor_before = snapshot(per_tensor_p);
    fused.step(lr, copies_on(grads, torch::kCUDA), grad_scales[step]);
    per_tensor.step(lr, copies_on(grads, torch::kCUDA), grad_scales[step]);
    cpu.step(lr, copies_on(grads, torch::kCPU), grad_scales[step]);

    const auto fused_state = fused.state_tensors();
    expect_close_tensors("parameters, fused vs per-tensor GPU", fused_p, per_tensor_p);
    expect_close_tensors("moments, fused vs per-tensor GPU", fused_state, per_tensor.state_tensors());
    expect_close_tensors("parameters, fused vs CPU", fused_p, cpu_p);
    expect_close_tensors("moments, fused vs CPU", fused_state, cpu.state_tensors());
    expect_same_updates("fused vs CPU", fused_p, fused_before, cpu_p, cpu_before);
    expect_same_updates("per-tensor GPU vs CPU", per_tensor_p, per_tensor_before, cpu_p, cpu_before);
  }
  EXPECT_EQ(fused.steps(), static_cast<int64_t>(grad_scales.size()));
  EXPECT_EQ(cpu.steps(), fused.steps());
}

// bf16 gradients (a step of one micro-batch) and the bf16 copies written in the same pass: the
// reference takes the same gradient values in float32; the copies equal the new parameters
// rounded to bf16, everywhere (they start as NaN).
TEST_F(FusedAdamW, Bf16GradientsAndComputeCopies) {
  const auto start = initial_values();
  const auto decay = decay_flags();
  auto fused_p = parameters_on(start, torch::kCUDA);
  auto cpu_p = parameters_on(start, torch::kCPU);
  train::AdamW fused(fused_p, decay, kFused), cpu(cpu_p, decay, kPerTensor);
  ASSERT_TRUE(fused.fused());
  std::vector<torch::Tensor> copies;
  for (const auto& [name, p] : fused_p) copies.push_back(torch::empty_like(p, p.options().dtype(torch::kBFloat16)));
  const std::vector<double> grad_scales{1.0, 0.37, 1.0};
  for (size_t step = 0; step < grad_scales.size(); ++step) {
    SCOPED_TRACE("step " + std::to_string(step + 1));
    for (auto& c : copies) c.fill_(std::numeric_limits<float>::quiet_NaN());
    std::vector<torch::Tensor> bf16_grads, reference_grads;
    for (const auto& g : random_gradients(0.3)) {
      bf16_grads.push_back(g.to(torch::kCUDA, torch::kBFloat16));
      reference_grads.push_back(bf16_grads.back().to(torch::kCPU, torch::kFloat32));
    }
    const auto fused_before = snapshot(fused_p), cpu_before = snapshot(cpu_p);
    fused.step(2e-3, bf16_grads, grad_scales[step], copies);
    cpu.step(2e-3, reference_grads, grad_scales[step]);
    expect_close_tensors("parameters, fused (bf16 gradients) vs CPU", fused_p, cpu_p);
    expect_close_tensors("moments, fused (bf16 gradients) vs CPU", fused.state_tensors(), cpu.state_tensors());
    expect_same_updates("fused (bf16 gradients) vs CPU", fused_p, fused_before, cpu_p, cpu_before);
    for (size_t i = 0; i < copies.size(); ++i) {
      EXPECT_TRUE(torch::equal(copies[i], fused_p[i].second.to(torch::kBFloat16))) << fused_p[i].first << ": copy";
    }
  }
}

// Parameters, moments and gradients that start 4 bytes into their buffers (ZeRO's shard pieces
// are views at any offset), and 45 tensors of 1 to 5000 values (two launches of the kernel).
TEST_F(FusedAdamW, UnalignedTensorsAndManyTensors) {
  std::uniform_int_distribution<int64_t> size(1, 5000);
  std::vector<torch::Tensor> start;
  std::vector<bool> decay;
  for (int i = 0; i < 45; ++i) {
    start.push_back(0.02 * torch::randn({size(rng)}));
    decay.push_back(i % 3 != 0);
  }
  const auto unaligned_on = [](const torch::Tensor& values, torch::Device device) {
    auto buffer = torch::zeros({values.numel() + 1}, values.options().device(device));
    auto view = buffer.narrow(0, 1, values.numel());
    view.copy_(values);
    return view;
  };
  model::NamedTensors fused_p, cpu_p;
  for (size_t i = 0; i < start.size(); ++i) {
    const std::string name = "t" + std::to_string(i);
    fused_p.emplace_back(name, i % 2 == 0 ? unaligned_on(start[i], torch::kCUDA) : start[i].to(torch::kCUDA).clone());
    cpu_p.emplace_back(name, start[i].clone());
  }
  train::AdamW fused(fused_p, decay, kFused), cpu(cpu_p, decay, kPerTensor);
  ASSERT_TRUE(fused.fused());
  for (int step = 0; step < 3; ++step) {
    SCOPED_TRACE("step " + std::to_string(step + 1));
    std::vector<torch::Tensor> fused_g, cpu_g;
    for (const auto& s : start) {
      cpu_g.push_back(torch::randn(s.sizes()));
      fused_g.push_back(step % 2 == 0 ? unaligned_on(cpu_g.back(), torch::kCUDA) : cpu_g.back().to(torch::kCUDA));
    }
    const auto fused_before = snapshot(fused_p), cpu_before = snapshot(cpu_p);
    fused.step(1e-3, fused_g, 0.81);
    cpu.step(1e-3, cpu_g, 0.81);
    expect_close_tensors("parameters", fused_p, cpu_p);
    expect_close_tensors("moments", fused.state_tensors(), cpu.state_tensors());
    expect_same_updates("updates", fused_p, fused_before, cpu_p, cpu_before);
  }
}

TEST_F(FusedAdamW, RestoredStateContinuesBitForBit) {
  const auto decay = decay_flags();
  auto first_p = parameters_on(initial_values(), torch::kCUDA);
  train::AdamW first(first_p, decay, kFused);
  ASSERT_TRUE(first.fused());
  first.step(1e-3, copies_on(random_gradients(1.0), torch::kCUDA), 1.0);
  first.step(2e-3, copies_on(random_gradients(0.1), torch::kCUDA), 0.37);
  first.step(1.5e-3, copies_on(random_gradients(3.0), torch::kCUDA), 1.0);

  // What a checkpoint holds: the parameters, the moments (CPU copies) and the step count.
  model::NamedTensors second_p;
  for (const auto& [name, p] : first_p) second_p.emplace_back(name, p.detach().clone());
  const auto saved = first.state_tensors();
  train::AdamW second(second_p, decay, kFused);
  second.load_state(std::map<std::string, torch::Tensor>(saved.begin(), saved.end()), first.steps(), "test");
  ASSERT_TRUE(second.fused());
  EXPECT_EQ(second.steps(), first.steps());

  const auto embedding_before = first_p[0].second.clone();
  const std::vector<double> grad_scales{0.37, 1.0};
  for (const double grad_scale : grad_scales) {
    const auto grads = random_gradients(0.5);
    first.step(2e-3, copies_on(grads, torch::kCUDA), grad_scale);
    second.step(2e-3, copies_on(grads, torch::kCUDA), grad_scale);
  }
  for (size_t i = 0; i < first_p.size(); ++i) {
    EXPECT_TRUE(torch::equal(first_p[i].second, second_p[i].second)) << first_p[i].first;
  }
  const auto first_state = first.state_tensors(), second_state = second.state_tensors();
  ASSERT_EQ(first_state.size(), second_state.size());
  for (size_t i = 0; i < first_state.size(); ++i) {
    EXPECT_EQ(first_state[i].first, second_state[i].first);
    EXPECT_TRUE(torch::equal(first_state[i].second, second_state[i].second)) << first_state[i].first;
  }
  // The two steps moved the parameters: the equality above is not between untouched tensors.
  EXPECT_FALSE(torch::equal(first_p[0].second, embedding_before));
}

}  // namespace
}  // namespace ssa::test
