// The fused RMSNorm, SwiGLU, RoPE and attention output gate (kernels/rms_norm.cu, swiglu.cu,
// rope.cu, output_gate.cu) on fresh random bf16 inputs: through the public dispatchers (fused=true)
// with autograd against the ATen reference functions in float32 on the CPU (the same bf16 values
// upcast); the raw launchers on outputs poisoned with NaN against the autograd bindings, bit for
// bit; the fused path against the eager bf16 path (train.fused_kernels off); and the shapes and
// dtypes the kernels refuse.
//
// Tolerances follow from the rounding each path does. Outputs with a single bf16 rounding of a
// float32 result (RMSNorm dx, SwiGLU y, dgate, dup, RoPE y, dx, the gate's y, do, dg) are within
// 2^-8 of each reference value's magnitude (plus float32 noise ~1e-6): 5e-3 relative and 5e-3 of
// the largest magnitude.
// RMSNorm's y = bf16(w * bf16(n)) rounds twice, so 2 * 2^-8 + 2^-16 ~ 7.8e-3 bounds it: 1e-2.
// RMSNorm dweight sums dy * bf16(n) over up to 8192 rows where the reference sums dy * n: the
// rounding errors average out over the rows (relative ~2e-3), but a column whose sum cancels has no
// per-element bound, so 1e-2 relative and 2e-2 of the largest column.
#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel_test_util.h"
#include "output_gate.h"
#include "rms_norm.h"
#include "rope.h"
#include "ssa/config/config.h"
#include "ssa/model/output_gate.h"
#include "ssa/model/rms_norm.h"
#include "ssa/model/rope.h"
#include "ssa/model/swiglu.h"
#include "ssa/util/error.h"
#include "swiglu.h"

namespace ssa::test {
namespace {

constexpr double kOneRounding = 5e-3;   // relative and abs fraction, see the top of the file
constexpr double kTwoRoundings = 1e-2;  // RMSNorm y
constexpr double kDweightRel = 1e-2, kDweightAbs = 2e-2;
// The eager path rounds every intermediate to bf16 (silu(gate); the bf16 cos and sin tables and
// each product of RoPE; dy * weight in RMSNorm's backward), so it is 2 to 4 roundings from the
// float32 result where the kernels are one or two: outputs within 1e-2 in norm, gradients (whose
// worst case, ~3 * 2^-8, is above 1e-2) within 2e-2. A kernel bug shows as errors of order 1.
constexpr double kEagerOutputRel = 1e-2, kEagerOutputAbs = 3e-2;
constexpr double kEagerGradRel = 2e-2, kEagerGradAbs = 4e-2;

constexpr double kEps = 1e-5;  // the Llama models' rms_norm_eps
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

const auto kCudaFloat = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA);

cudaStream_t stream() { return at::cuda::getCurrentCUDAStream().stream(); }

torch::Tensor poisoned_like(const torch::Tensor& t) { return torch::full_like(t, kNaN); }

std::string join_sizes(const std::vector<int64_t>& sizes) {
  std::string s;
  for (const int64_t n : sizes) s += (s.empty() ? "" : "x") + std::to_string(n);
  return s;
}

// An op's output and the gradients of its inputs, in the inputs' order.
struct Result {
  torch::Tensor out;
  std::vector<torch::Tensor> grads;
};

// `op` on float32 CPU copies of the bf16 `inputs`, with its autograd gradients for `grad_out`
// (bf16 values, upcast): the ground truth.
template <typename Op>
Result float32_reference(const std::vector<torch::Tensor>& inputs, const torch::Tensor& grad_out, Op&& op) {
  std::vector<torch::Tensor> leaves;
  for (const auto& t : inputs) leaves.push_back(t.detach().cpu().to(torch::kFloat32).requires_grad_(true));
  const auto out = op(leaves);
  return {out.detach(), torch::autograd::grad({out}, leaves, {grad_out.cpu().to(torch::kFloat32)})};
}

// `op` on bf16 CUDA leaves holding the `inputs`' values, with its autograd gradients for `grad_out`.
template <typename Op>
Result cuda_autograd(const std::vector<torch::Tensor>& inputs, const torch::Tensor& grad_out, Op&& op) {
  std::vector<torch::Tensor> leaves;
  for (const auto& t : inputs) leaves.push_back(t.detach().clone().requires_grad_(true));
  const auto out = op(leaves);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(out.sizes().vec(), inputs[0].sizes().vec());
  return {out.detach(), torch::autograd::grad({out}, leaves, {grad_out})};
}

// The raw launchers must give exactly what the binding gave (the binding calls them); `what`
// names the binding.
void expect_bitwise(const std::string& what, const Result& raw, const Result& binding,
                    const std::vector<std::string>& grad_names) {
  SCOPED_TRACE(what);
  EXPECT_TRUE(torch::equal(raw.out, binding.out)) << "output differs from " << what;
  ASSERT_EQ(raw.grads.size(), binding.grads.size());
  for (size_t i = 0; i < raw.grads.size(); ++i) {
    EXPECT_TRUE(torch::equal(raw.grads[i], binding.grads[i])) << grad_names[i] << " differs from " << what;
  }
}

void expect_all_written(const Result& raw, const std::vector<std::string>& grad_names) {
  EXPECT_TRUE(all_finite(raw.out)) << "output has unwritten (NaN) elements";
  for (size_t i = 0; i < raw.grads.size(); ++i) {
    EXPECT_TRUE(all_finite(raw.grads[i])) << grad_names[i] << " has unwritten (NaN) elements";
  }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

struct RmsNormCase {
  std::vector<int64_t> shape;  // [..., dim]
  std::string name() const { return join_sizes(shape); }
};
void PrintTo(const RmsNormCase& c, std::ostream* os) { *os << c.name(); }

struct RmsNormInputs {
  torch::Tensor x, weight, grad_y;  // bf16 CUDA
  std::vector<torch::Tensor> leaves() const { return {x, weight}; }
};

RmsNormInputs rms_norm_inputs(const RmsNormCase& c, uint64_t seed) {
  torch::manual_seed(seed);
  auto row_shape = c.shape;
  row_shape.back() = 1;
  RmsNormInputs in;
  // Rows whose scales span e^-3 to e^3 (hidden states grow through the layers): 1/rms differs per
  // row, and eps is 0.4% of mean(x^2) in the smallest.
  in.x = (torch::randn(c.shape, kCudaFloat) * torch::exp(torch::rand(row_shape, kCudaFloat) * 6 - 3))
             .to(torch::kBFloat16);
  // Weights around 1 as after training, some negative or near zero.
  in.weight = (1 + 0.5 * torch::randn({c.shape.back()}, kCudaFloat)).to(torch::kBFloat16);
  in.grad_y = torch::randn(c.shape, kCudaFloat).to(torch::kBFloat16);
  return in;
}

const std::vector<std::string> kRmsNormGrads{"dx", "dweight"};

class FusedRmsNormTest : public ::testing::TestWithParam<RmsNormCase> {};

TEST_P(FusedRmsNormTest, MatchesFloat32ReferenceWithGradients) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const RmsNormInputs in = rms_norm_inputs(GetParam(), seed);
  ASSERT_TRUE(model::rms_norm_cuda_supports(in.x, in.weight));

  const Result want = float32_reference(in.leaves(), in.grad_y,
                                        [](const auto& v) { return model::rms_norm_reference(v[0], v[1], kEps); });
  const Result got =
      cuda_autograd(in.leaves(), in.grad_y, [](const auto& v) { return model::rms_norm(v[0], v[1], kEps, true); });
  expect_close("y", got.out, want.out, kTwoRoundings, kTwoRoundings);
  expect_close("dx", got.grads[0], want.grads[0], kOneRounding, kOneRounding);
  expect_close("dweight", got.grads[1], want.grads[1], kDweightRel, kDweightAbs);
}

TEST_P(FusedRmsNormTest, RawKernelsWriteEveryOutputAndMatchTheBinding) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const RmsNormInputs in = rms_norm_inputs(GetParam(), seed);
  const int64_t dim = in.x.size(-1), rows = in.x.numel() / dim;

  Result raw{poisoned_like(in.x), {poisoned_like(in.x), poisoned_like(in.weight)}};
  auto rstd = torch::full({rows}, kNaN, kCudaFloat);
  kernels::rms_norm_forward(bf16_data(in.x), bf16_data(in.weight), bf16_data(raw.out), rstd.data_ptr<float>(), rows, dim,
                            static_cast<float>(kEps), stream());
  // NaN in the workspace too: a CTA that left its partial row of dweight unwritten turns its
  // columns' sums into NaN.
  const auto workspace_floats =
      static_cast<int64_t>(kernels::rms_norm_backward_workspace_bytes(rows, dim) / sizeof(float));
  auto workspace = torch::full({std::max<int64_t>(1, workspace_floats)}, kNaN, kCudaFloat);
  kernels::rms_norm_backward(bf16_data(in.x), bf16_data(in.weight), rstd.data_ptr<float>(), bf16_data(in.grad_y),
                             bf16_data(raw.grads[0]), bf16_data(raw.grads[1]), workspace.data_ptr(), rows, dim,
                             stream());
  torch::cuda::synchronize();
  expect_all_written(raw, kRmsNormGrads);
  EXPECT_TRUE(all_finite(rstd)) << "rstd has unwritten (NaN) elements";

  expect_bitwise("rms_norm_cuda (the binding)", raw,
                 cuda_autograd(in.leaves(), in.grad_y,
                               [](const auto& v) { return model::rms_norm_cuda(v[0], v[1], kEps); }),
                 kRmsNormGrads);
  // Also through the dispatcher: it must route these inputs to the kernels, not to ATen (whose
  // output alone can agree bit for bit; its gradients round differently).
  expect_bitwise("rms_norm(fused=true) (the dispatcher)", raw,
                 cuda_autograd(in.leaves(), in.grad_y,
                               [](const auto& v) { return model::rms_norm(v[0], v[1], kEps, true); }),
                 kRmsNormGrads);

  // rstd is a float32 sum of squares and rsqrtf: within a few float32 ulps of float64.
  const auto x64 = in.x.cpu().to(torch::kFloat64).reshape({rows, dim});
  const auto want_rstd = 1.0 / torch::sqrt(x64.pow(2).mean(-1) + kEps);
  const double worst = ((rstd.cpu().to(torch::kFloat64) - want_rstd).abs() / want_rstd).max().item<double>();
  EXPECT_LE(worst, 1e-5) << "rstd: largest relative error per row";
}

TEST_P(FusedRmsNormTest, AgreesWithEagerBf16WithinRounding) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const RmsNormInputs in = rms_norm_inputs(GetParam(), seed);
  const Result fused =
      cuda_autograd(in.leaves(), in.grad_y, [](const auto& v) { return model::rms_norm(v[0], v[1], kEps, true); });
  const Result eager =
      cuda_autograd(in.leaves(), in.grad_y, [](const auto& v) { return model::rms_norm(v[0], v[1], kEps, false); });
  expect_close("y vs eager", fused.out, eager.out, kEagerOutputRel, kEagerOutputAbs);
  expect_close("dx vs eager", fused.grads[0], eager.grads[0], kEagerGradRel, kEagerGradAbs);
  expect_close("dweight vs eager", fused.grads[1], eager.grads[1], kEagerGradRel, kEagerGradAbs);
}

INSTANTIATE_TEST_SUITE_P(Shapes, FusedRmsNormTest,
                         ::testing::Values(RmsNormCase{{1, 8}},        // one vector: a single warp
                                           RmsNormCase{{3, 2048}},     // one vector per thread
                                           RmsNormCase{{8192, 2048}},  // the 1B model's rows of a micro-batch
                                           RmsNormCase{{37, 4096}},    // two vectors per thread
                                           RmsNormCase{{5, 8192}},     // the widest row: four per thread
                                           RmsNormCase{{2, 5, 2048}}),  // [B, T, dim]
                         [](const auto& info) { return info.param.name(); });

TEST(FusedRmsNorm, RejectsRowWidthsTheKernelsCannotTake) {
  EXPECT_THROW(kernels::check_rms_norm_shape(3, 12), std::invalid_argument);     // not a multiple of 8
  EXPECT_THROW(kernels::check_rms_norm_shape(3, 16384), std::invalid_argument);  // wider than 8192
  EXPECT_THROW(kernels::check_rms_norm_shape(3, 0), std::invalid_argument);
  EXPECT_NO_THROW(kernels::check_rms_norm_shape(3, kernels::kRmsNormMaxDim));
  EXPECT_NO_THROW(kernels::check_rms_norm_shape(0, 8));
}

TEST(FusedRmsNorm, InputsTheKernelsCannotTakeGoThroughTheReference) {
  SSA_REQUIRE_CUDA();
  const auto x = torch::randn({4, 64}, kCudaFloat), w = torch::randn({64}, kCudaFloat);
  EXPECT_FALSE(model::rms_norm_cuda_supports(x, w));
  EXPECT_THROW(model::rms_norm_cuda(x, w, kEps), UsageError);
  EXPECT_TRUE(torch::equal(model::rms_norm(x, w, kEps, true), model::rms_norm_reference(x, w, kEps)));

  // bf16, but a row width the kernels do not take.
  const auto x12 = torch::randn({4, 12}, kCudaFloat).to(torch::kBFloat16);
  const auto w12 = torch::randn({12}, kCudaFloat).to(torch::kBFloat16);
  EXPECT_FALSE(model::rms_norm_cuda_supports(x12, w12));
  EXPECT_THROW(model::rms_norm_cuda(x12, w12, kEps), UsageError);
  EXPECT_TRUE(torch::equal(model::rms_norm(x12, w12, kEps, true), model::rms_norm_reference(x12, w12, kEps)));
}

// ---------------------------------------------------------------------------------------------
// SwiGLU

struct SwigluCase {
  std::vector<int64_t> shape;
  std::string name() const { return join_sizes(shape); }
};
void PrintTo(const SwigluCase& c, std::ostream* os) { *os << c.name(); }

struct SwigluInputs {
  torch::Tensor gate, up, grad_y;  // bf16 CUDA
  std::vector<torch::Tensor> leaves() const { return {gate, up}; }
};

SwigluInputs swiglu_inputs(const SwigluCase& c, uint64_t seed) {
  torch::manual_seed(seed);
  SwigluInputs in;
  // Gate pre-activations out to about +-15, where the sigmoid saturates.
  in.gate = (torch::randn(c.shape, kCudaFloat) * 3).to(torch::kBFloat16);
  in.up = torch::randn(c.shape, kCudaFloat).to(torch::kBFloat16);
  in.grad_y = torch::randn(c.shape, kCudaFloat).to(torch::kBFloat16);
  return in;
}

const std::vector<std::string> kSwigluGrads{"dgate", "dup"};

class FusedSwigluTest : public ::testing::TestWithParam<SwigluCase> {};

TEST_P(FusedSwigluTest, MatchesFloat32ReferenceWithGradients) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const SwigluInputs in = swiglu_inputs(GetParam(), seed);
  ASSERT_TRUE(model::swiglu_cuda_supports(in.gate, in.up));

  const Result want =
      float32_reference(in.leaves(), in.grad_y, [](const auto& v) { return model::swiglu_reference(v[0], v[1]); });
  const Result got = cuda_autograd(in.leaves(), in.grad_y, [](const auto& v) { return model::swiglu(v[0], v[1], true); });
  expect_close("y", got.out, want.out, kOneRounding, kOneRounding);
  expect_close("dgate", got.grads[0], want.grads[0], kOneRounding, kOneRounding);
  expect_close("dup", got.grads[1], want.grads[1], kOneRounding, kOneRounding);
}

TEST_P(FusedSwigluTest, RawKernelsWriteEveryOutputAndMatchTheBinding) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const SwigluInputs in = swiglu_inputs(GetParam(), seed);
  const int64_t count = in.gate.numel();

  Result raw{poisoned_like(in.gate), {poisoned_like(in.gate), poisoned_like(in.up)}};
  kernels::swiglu_forward(bf16_data(in.gate), bf16_data(in.up), bf16_data(raw.out), count, stream());
  kernels::swiglu_backward(bf16_data(in.gate), bf16_data(in.up), bf16_data(in.grad_y), bf16_data(raw.grads[0]),
                           bf16_data(raw.grads[1]), count, stream());
  torch::cuda::synchronize();
  expect_all_written(raw, kSwigluGrads);

  expect_bitwise("swiglu_cuda (the binding)", raw,
                 cuda_autograd(in.leaves(), in.grad_y, [](const auto& v) { return model::swiglu_cuda(v[0], v[1]); }),
                 kSwigluGrads);
  expect_bitwise("swiglu(fused=true) (the dispatcher)", raw,
                 cuda_autograd(in.leaves(), in.grad_y, [](const auto& v) { return model::swiglu(v[0], v[1], true); }),
                 kSwigluGrads);
}

TEST_P(FusedSwigluTest, AgreesWithEagerBf16WithinRounding) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const SwigluInputs in = swiglu_inputs(GetParam(), seed);
  const Result fused =
      cuda_autograd(in.leaves(), in.grad_y, [](const auto& v) { return model::swiglu(v[0], v[1], true); });
  const Result eager =
      cuda_autograd(in.leaves(), in.grad_y, [](const auto& v) { return model::swiglu(v[0], v[1], false); });
  expect_close("y vs eager", fused.out, eager.out, kEagerOutputRel, kEagerOutputAbs);
  expect_close("dgate vs eager", fused.grads[0], eager.grads[0], kEagerGradRel, kEagerGradAbs);
  expect_close("dup vs eager", fused.grads[1], eager.grads[1], kEagerGradRel, kEagerGradAbs);
}

INSTANTIATE_TEST_SUITE_P(Shapes, FusedSwigluTest,
                         ::testing::Values(SwigluCase{{1, 8192, 8192}},  // the 1B MLP: 8192 tokens x 8192
                                           SwigluCase{{3, 7, 13}},       // 273 values: the scalar tail
                                           SwigluCase{{2, 33, 256}}),
                         [](const auto& info) { return info.param.name(); });

TEST(FusedSwiglu, InputsTheKernelsCannotTakeGoThroughTheReference) {
  SSA_REQUIRE_CUDA();
  const auto gate = torch::randn({3, 40}, kCudaFloat), up = torch::randn({3, 40}, kCudaFloat);
  EXPECT_FALSE(model::swiglu_cuda_supports(gate, up));
  EXPECT_THROW(model::swiglu_cuda(gate, up), UsageError);
  EXPECT_TRUE(torch::equal(model::swiglu(gate, up, true), model::swiglu_reference(gate, up)));
  // bf16 of two shapes.
  EXPECT_FALSE(model::swiglu_cuda_supports(gate.to(torch::kBFloat16), up.narrow(1, 0, 32).to(torch::kBFloat16)));
}

// ---------------------------------------------------------------------------------------------
// RoPE

struct RopeCase {
  int64_t batch, length, heads, head_dim;
  std::string rope_type;  // default | llama3 | yarn
  std::string name() const {
    return "B" + std::to_string(batch) + "_T" + std::to_string(length) + "_H" + std::to_string(heads) + "_D" +
           std::to_string(head_dim) + "_" + rope_type;
  }
};
void PrintTo(const RopeCase& c, std::ostream* os) { *os << c.name(); }

config::ModelConfig rope_config(const RopeCase& c) {
  config::ModelConfig m;  // rope_theta 500000, as Llama 3
  m.head_dim = c.head_dim;
  m.rope_scaling.rope_type = c.rope_type;
  if (c.rope_type == "llama3") {  // Llama 3.2's
    m.rope_scaling.factor = 32.0;
    m.rope_scaling.low_freq_factor = 1.0;
    m.rope_scaling.high_freq_factor = 4.0;
    m.rope_scaling.original_max_position_embeddings = 8192;
  } else if (c.rope_type == "yarn") {  // attention_scaling 1.14: tables that are not unit rotations
    m.rope_scaling.factor = 4.0;
    m.rope_scaling.original_max_position_embeddings = 8192;
  }
  return m;
}

// Rows packed with documents: positions restart at 0 where a document starts (random lengths, at
// least 8 tokens possible so that short rows are not all position 0), and the first document of a
// row is the tail of a longer one, so that angles reach far.
torch::Tensor packed_positions(const RopeCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
  std::uniform_int_distribution<int64_t> document(1, std::max<int64_t>(8, c.length / 3)), offset(0, 32767);
  auto positions = torch::empty({c.batch, c.length}, torch::kInt64);
  auto a = positions.accessor<int64_t, 2>();
  for (int64_t b = 0; b < c.batch; ++b) {
    int64_t position = offset(rng), left = document(rng);
    for (int64_t t = 0; t < c.length; ++t, --left) {
      if (left == 0) {
        position = 0;
        left = document(rng);
      }
      a[b][t] = position++;
    }
  }
  return positions.to(torch::kCUDA);
}

struct RopeInputs {
  torch::Tensor x, grad_y;  // bf16 CUDA [B, T, H, D]
  model::RopeTables tables;  // float32 CUDA [B, T, D]
};

RopeInputs rope_inputs(const RopeCase& c, uint64_t seed) {
  torch::manual_seed(seed);
  RopeInputs in;
  in.x = torch::randn({c.batch, c.length, c.heads, c.head_dim}, kCudaFloat).to(torch::kBFloat16);
  in.grad_y = torch::randn({c.batch, c.length, c.heads, c.head_dim}, kCudaFloat).to(torch::kBFloat16);
  in.tables = model::rope_tables(model::rope_parameters(rope_config(c)), packed_positions(c, seed));
  return in;
}

const std::vector<std::string> kRopeGrads{"dx"};

class FusedRopeTest : public ::testing::TestWithParam<RopeCase> {};

TEST_P(FusedRopeTest, MatchesFloat32ReferenceWithGradients) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const RopeInputs in = rope_inputs(GetParam(), seed);
  ASSERT_EQ(in.tables.cos.scalar_type(), torch::kFloat32);
  ASSERT_TRUE(in.tables.cos.is_cuda());
  ASSERT_TRUE(model::apply_rope_cuda_supports(in.x, in.tables));

  // The same float32 tables on both sides: this compares the rotation, not cos and sin.
  const model::RopeTables cpu_tables{in.tables.cos.cpu(), in.tables.sin.cpu()};
  const Result want = float32_reference(
      {in.x}, in.grad_y, [&](const auto& v) { return model::apply_rope_reference(v[0], cpu_tables); });
  const Result got =
      cuda_autograd({in.x}, in.grad_y, [&](const auto& v) { return model::apply_rope(v[0], in.tables, true); });
  expect_close("y", got.out, want.out, kOneRounding, kOneRounding);
  expect_close("dx", got.grads[0], want.grads[0], kOneRounding, kOneRounding);
}

TEST_P(FusedRopeTest, RawKernelWritesEveryOutputAndMatchesTheBinding) {
  SSA_REQUIRE_CUDA();
  const RopeCase c = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const RopeInputs in = rope_inputs(c, seed);
  const auto cos = in.tables.cos.contiguous(), sin = in.tables.sin.contiguous();
  kernels::RopeShape shape;
  shape.batch = c.batch;
  shape.length = c.length;
  shape.heads = c.heads;
  shape.head_dim = c.head_dim;

  Result raw{poisoned_like(in.x), {poisoned_like(in.x)}};
  kernels::rope_apply(bf16_data(in.x), cos.data_ptr<float>(), sin.data_ptr<float>(), bf16_data(raw.out), shape,
                      /*backward=*/false, stream());
  kernels::rope_apply(bf16_data(in.grad_y), cos.data_ptr<float>(), sin.data_ptr<float>(), bf16_data(raw.grads[0]), shape,
                      /*backward=*/true, stream());
  torch::cuda::synchronize();
  expect_all_written(raw, kRopeGrads);

  expect_bitwise("apply_rope_cuda (the binding)", raw,
                 cuda_autograd({in.x}, in.grad_y, [&](const auto& v) { return model::apply_rope_cuda(v[0], in.tables); }),
                 kRopeGrads);
  expect_bitwise("apply_rope(fused=true) (the dispatcher)", raw,
                 cuda_autograd({in.x}, in.grad_y,
                               [&](const auto& v) { return model::apply_rope(v[0], in.tables, true); }),
                 kRopeGrads);
}

TEST_P(FusedRopeTest, AgreesWithEagerBf16WithinRounding) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const RopeInputs in = rope_inputs(GetParam(), seed);
  const Result fused =
      cuda_autograd({in.x}, in.grad_y, [&](const auto& v) { return model::apply_rope(v[0], in.tables, true); });
  const Result eager =
      cuda_autograd({in.x}, in.grad_y, [&](const auto& v) { return model::apply_rope(v[0], in.tables, false); });
  expect_close("y vs eager", fused.out, eager.out, kEagerOutputRel, kEagerOutputAbs);
  expect_close("dx vs eager", fused.grads[0], eager.grads[0], kEagerGradRel, kEagerGradAbs);
}

INSTANTIATE_TEST_SUITE_P(Shapes, FusedRopeTest,
                         ::testing::Values(RopeCase{1, 8192, 32, 64, "default"},  // the 1B model's query heads
                                           RopeCase{1, 8192, 8, 64, "llama3"},    // its KV heads, Llama 3.2 scaling
                                           RopeCase{2, 77, 4, 128, "default"},    // D 128, ragged T
                                           RopeCase{3, 5, 2, 8, "default"},       // the narrowest head: 4 pairs
                                           RopeCase{2, 33, 3, 16, "yarn"}),       // scaled (non-unit) tables
                         [](const auto& info) { return info.param.name(); });

TEST(FusedRope, RejectsHeadDimsNotAMultipleOf8) {
  kernels::RopeShape shape;
  shape.batch = 1;
  shape.length = 4;
  shape.heads = 2;
  shape.head_dim = 12;
  EXPECT_THROW(kernels::check_rope_shape(shape), std::invalid_argument);
  shape.head_dim = 0;
  EXPECT_THROW(kernels::check_rope_shape(shape), std::invalid_argument);
  shape.head_dim = 16;
  EXPECT_NO_THROW(kernels::check_rope_shape(shape));
}

TEST(FusedRope, HeadDimsTheKernelCannotTakeGoThroughTheReference) {
  SSA_REQUIRE_CUDA();
  const RopeCase c{1, 6, 2, 12, "default"};
  const RopeInputs in = rope_inputs(c, fresh_seed());
  EXPECT_FALSE(model::apply_rope_cuda_supports(in.x, in.tables));
  EXPECT_THROW(model::apply_rope_cuda(in.x, in.tables), UsageError);
  EXPECT_TRUE(torch::equal(model::apply_rope(in.x, in.tables, true), model::apply_rope_reference(in.x, in.tables)));
}


// ---------------------------------------------------------------------------------------------
// The attention output gate

struct OutputGateCase {
  std::vector<int64_t> shape;  // o: [B, T, Hq, D]
  bool elementwise;
  std::string name() const { return join_sizes(shape) + (elementwise ? "_elementwise" : "_headwise"); }
};
void PrintTo(const OutputGateCase& c, std::ostream* os) { *os << c.name(); }

struct OutputGateInputs {
  torch::Tensor o, g, grad_y;  // bf16 CUDA
  std::vector<torch::Tensor> leaves() const { return {o, g}; }
};

OutputGateInputs output_gate_inputs(const OutputGateCase& c, uint64_t seed) {
  torch::manual_seed(seed);
  auto g_shape = c.shape;
  if (!c.elementwise) g_shape.pop_back();
  OutputGateInputs in;
  in.o = torch::randn(c.shape, kCudaFloat).to(torch::kBFloat16);
  // Logits out to about +-12, where the sigmoid saturates.
  in.g = (torch::randn(g_shape, kCudaFloat) * 4).to(torch::kBFloat16);
  in.grad_y = torch::randn(c.shape, kCudaFloat).to(torch::kBFloat16);
  return in;
}

kernels::OutputGateShape output_gate_shape(const OutputGateCase& c) {
  kernels::OutputGateShape shape;
  shape.head_dim = c.shape.back();
  shape.rows = 1;
  for (size_t i = 0; i + 1 < c.shape.size(); ++i) shape.rows *= c.shape[i];
  shape.elementwise = c.elementwise;
  return shape;
}

const std::vector<std::string> kOutputGateGrads{"do", "dg"};

class FusedOutputGateTest : public ::testing::TestWithParam<OutputGateCase> {};

TEST_P(FusedOutputGateTest, MatchesFloat32ReferenceWithGradients) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const OutputGateInputs in = output_gate_inputs(GetParam(), seed);
  ASSERT_TRUE(model::output_gate_cuda_supports(in.o, in.g));

  const Result want = float32_reference(in.leaves(), in.grad_y,
                                        [](const auto& v) { return model::output_gate_reference(v[0], v[1]); });
  const Result got =
      cuda_autograd(in.leaves(), in.grad_y, [](const auto& v) { return model::output_gate(v[0], v[1], true); });
  expect_close("y", got.out, want.out, kOneRounding, kOneRounding);
  expect_close("do", got.grads[0], want.grads[0], kOneRounding, kOneRounding);
  expect_close("dg", got.grads[1], want.grads[1], kOneRounding, kOneRounding);
}

TEST_P(FusedOutputGateTest, RawKernelsWriteEveryOutputAndMatchTheBinding) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const OutputGateInputs in = output_gate_inputs(GetParam(), seed);
  const auto shape = output_gate_shape(GetParam());

  Result raw{poisoned_like(in.o), {poisoned_like(in.o), poisoned_like(in.g)}};
  kernels::output_gate_forward(bf16_data(in.o), bf16_data(in.g), bf16_data(raw.out), shape,
                               stream());
  kernels::output_gate_backward(bf16_data(in.o), bf16_data(in.g), bf16_data(in.grad_y),
                                bf16_data(raw.grads[0]), bf16_data(raw.grads[1]), shape, stream());
  torch::cuda::synchronize();
  expect_all_written(raw, kOutputGateGrads);

  expect_bitwise("output_gate_cuda (the binding)", raw,
                 cuda_autograd(in.leaves(), in.grad_y,
                               [](const auto& v) { return model::output_gate_cuda(v[0], v[1]); }),
                 kOutputGateGrads);
  expect_bitwise("output_gate(fused=true) (the dispatcher)", raw,
                 cuda_autograd(in.leaves(), in.grad_y,
                               [](const auto& v) { return model::output_gate(v[0], v[1], true); }),
                 kOutputGateGrads);
}

TEST_P(FusedOutputGateTest, AgreesWithEagerBf16WithinRounding) {
  SSA_REQUIRE_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const OutputGateInputs in = output_gate_inputs(GetParam(), seed);
  const Result fused =
      cuda_autograd(in.leaves(), in.grad_y, [](const auto& v) { return model::output_gate(v[0], v[1], true); });
  const Result eager =
      cuda_autograd(in.leaves(), in.grad_y, [](const auto& v) { return model::output_gate(v[0], v[1], false); });
  expect_close("y vs eager", fused.out, eager.out, kEagerOutputRel, kEagerOutputAbs);
  expect_close("do vs eager", fused.grads[0], eager.grads[0], kEagerGradRel, kEagerGradAbs);
  expect_close("dg vs eager", fused.grads[1], eager.grads[1], kEagerGradRel, kEagerGradAbs);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FusedOutputGateTest,
    ::testing::Values(OutputGateCase{{1, 8192, 32, 64}, false},  // the paper's 1B: a head-wise gate per query head
                      OutputGateCase{{2, 77, 3, 128}, false},    // D 128: 16 lanes per row, a partial last warp
                      OutputGateCase{{3, 5, 2, 8}, false},       // D 8: one lane per row
                      OutputGateCase{{2, 33, 4, 64}, true},      // element-wise
                      OutputGateCase{{3, 5, 7, 3}, true}),       // element-wise, 315 values: the scalar tail
    [](const auto& info) { return info.param.name(); });

TEST(FusedOutputGate, InputsTheKernelsCannotTakeGoThroughTheReference) {
  SSA_REQUIRE_CUDA();
  const auto o = torch::randn({2, 3, 4, 24}, kCudaFloat).to(torch::kBFloat16);
  const auto g = torch::randn({2, 3, 4}, kCudaFloat).to(torch::kBFloat16);
  // A head-wise gate over D 24: three lanes per row, not a power of two.
  EXPECT_FALSE(model::output_gate_cuda_supports(o, g));
  EXPECT_THROW(model::output_gate_cuda(o, g), UsageError);
  EXPECT_TRUE(torch::equal(model::output_gate(o, g, true), model::output_gate_reference(o, g)));
  // float32, and a gate of neither shape.
  EXPECT_FALSE(model::output_gate_cuda_supports(o.to(torch::kFloat32), g.to(torch::kFloat32)));
  EXPECT_FALSE(model::output_gate_cuda_supports(o.narrow(3, 0, 16), g.narrow(2, 0, 3)));
  // A zero-width head dimension (element-wise): no rows to count, the reference's empty result.
  const auto empty_o = o.narrow(3, 0, 0), empty_g = o.narrow(3, 0, 0);
  EXPECT_FALSE(model::output_gate_cuda_supports(empty_o, empty_g));
  EXPECT_EQ(model::output_gate(empty_o, empty_g, true).sizes(), empty_o.sizes());
  kernels::OutputGateShape shape;
  shape.rows = 4;
  shape.head_dim = 24;
  EXPECT_FALSE(kernels::output_gate_supports(shape));
  EXPECT_THROW(kernels::output_gate_forward(nullptr, nullptr, nullptr, shape, stream()), std::invalid_argument);
  shape.elementwise = true;
  EXPECT_TRUE(kernels::output_gate_supports(shape));
}

}  // namespace
}  // namespace ssa::test
