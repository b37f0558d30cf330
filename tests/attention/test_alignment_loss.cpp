#include <gtest/gtest.h>

#include "attention/reference_math.h"
#include "ssa/attention/alignment_loss.h"
#include "ssa/model/llama.h"
#include "ssa/util/error.h"

namespace ssa::attention {
namespace {

AlignSpec spec_for(const std::string& directions, const std::string& loss = "smooth_l1", double beta = 1.0) {
  config::SsaAlignConfig c;
  c.directions = directions;
  c.loss = loss;
  c.beta = beta;
  return align_spec(c);
}

// Mean over elements of SmoothL1(d) with `beta`, or of d^2, written out.
double expected_distance(const torch::Tensor& a, const torch::Tensor& b, bool smooth_l1, double beta) {
  auto d = (a - b).to(torch::kFloat64).contiguous().view({-1});
  double sum = 0;
  for (int64_t i = 0; i < d.numel(); ++i) {
    const double x = std::fabs(d[i].item<double>());
    sum += smooth_l1 ? (x < beta ? 0.5 * x * x / beta : x - 0.5 * beta) : x * x;
  }
  return sum / d.numel();
}

TEST(AlignmentLoss, SpecFromConfig) {
  auto both = spec_for("both");
  EXPECT_TRUE(both.smooth_l1);
  EXPECT_EQ(both.sparsity_weight, 1.0);
  EXPECT_EQ(both.commitment_weight, 1.0);
  auto sparsity = spec_for("sparsity", "l2");
  EXPECT_FALSE(sparsity.smooth_l1);
  EXPECT_EQ(sparsity.sparsity_weight, 1.0);
  EXPECT_EQ(sparsity.commitment_weight, 0.0);
  auto commitment = spec_for("commitment", "smooth_l1", 0.25);
  EXPECT_EQ(commitment.beta, 0.25);
  EXPECT_EQ(commitment.sparsity_weight, 0.0);
  EXPECT_EQ(commitment.commitment_weight, 1.0);
  auto none = spec_for("none");
  EXPECT_EQ(none.sparsity_weight, 0.0);
  EXPECT_EQ(none.commitment_weight, 0.0);
  EXPECT_THROW(spec_for("forward"), UsageError);
  EXPECT_THROW(spec_for("both", "l1"), UsageError);
  EXPECT_THROW(spec_for("both", "smooth_l1", 0.0), UsageError);
}

TEST(AlignmentLoss, ValuesAreSmoothL1OrSquaredErrorMeans) {
  torch::manual_seed(31);
  auto o_full = torch::randn({2, 5, 4, 8}, torch::kFloat64) * 2;  // differences on both sides of beta
  auto o_sparse = torch::randn({2, 5, 4, 8}, torch::kFloat64) * 2;
  for (double beta : {1.0, 0.5}) {
    const double one = expected_distance(o_full, o_sparse, true, beta);
    EXPECT_NEAR(alignment_loss(o_full, o_sparse, spec_for("both", "smooth_l1", beta)).item<double>(), 2 * one, 1e-12);
    EXPECT_NEAR(alignment_loss(o_full, o_sparse, spec_for("sparsity", "smooth_l1", beta)).item<double>(), one, 1e-12);
    EXPECT_NEAR(alignment_loss(o_full, o_sparse, spec_for("commitment", "smooth_l1", beta)).item<double>(), one, 1e-12);
  }
  const double squared = expected_distance(o_full, o_sparse, false, 1.0);
  EXPECT_NEAR(alignment_loss(o_full, o_sparse, spec_for("both", "l2")).item<double>(), 2 * squared, 1e-12);
  EXPECT_EQ(alignment_loss(o_full, o_sparse, spec_for("none")).item<double>(), 0.0);
  EXPECT_THROW(alignment_loss(o_full, o_sparse.narrow(1, 0, 4), spec_for("both")), UsageError);
}

TEST(AlignmentLoss, StopGradientDirections) {
  torch::manual_seed(32);
  auto o_full = (torch::randn({2, 6, 4, 8}, torch::kFloat64) * 2).requires_grad_(true);
  auto o_sparse = (torch::randn({2, 6, 4, 8}, torch::kFloat64) * 2).requires_grad_(true);
  auto grads = [&](const AlignSpec& spec) {
    return torch::autograd::grad({alignment_loss(o_full, o_sparse, spec)}, {o_full, o_sparse}, {}, false, false,
                                 /*allow_unused=*/true);
  };
  for (const std::string loss : {"smooth_l1", "l2"}) {
    // Sparsity term: gradient only into o_full.
    auto sparsity = grads(spec_for("sparsity", loss));
    ASSERT_TRUE(sparsity[0].defined());
    EXPECT_GT(sparsity[0].abs().sum().item<double>(), 0);
    EXPECT_TRUE(!sparsity[1].defined() || sparsity[1].abs().sum().item<double>() == 0);
    // Commitment term: gradient only into o_sparse.
    auto commitment = grads(spec_for("commitment", loss));
    EXPECT_TRUE(!commitment[0].defined() || commitment[0].abs().sum().item<double>() == 0);
    ASSERT_TRUE(commitment[1].defined());
    EXPECT_GT(commitment[1].abs().sum().item<double>(), 0);
    // Both: each output gets exactly its own term's gradient (without stop-gradient it would be twice that).
    auto both = grads(spec_for("both", loss));
    EXPECT_TRUE(torch::allclose(both[0], sparsity[0], 0, 1e-15));
    EXPECT_TRUE(torch::allclose(both[1], commitment[1], 0, 1e-15));
    EXPECT_TRUE(torch::allclose(both[0], -both[1], 0, 1e-15));
    // No alignment: no gradient at all.
    EXPECT_FALSE(alignment_loss(o_full, o_sparse, spec_for("none", loss)).requires_grad());
  }
}

TEST(AlignmentLoss, GradientsMatchFiniteDifferences) {
  torch::manual_seed(33);
  auto o_full = torch::randn({1, 3, 2, 4}, torch::kFloat64) * 2;
  auto o_sparse = torch::randn({1, 3, 2, 4}, torch::kFloat64) * 2;
  for (const std::string loss : {"smooth_l1", "l2"}) {
    // With the other argument held (it is stop-gradient'ed), each direction is an ordinary function.
    test::expect_gradients_match_finite_differences(
        [&](const std::vector<torch::Tensor>& x) { return alignment_loss(x[0], o_sparse, spec_for("sparsity", loss, 0.7)); },
        {o_full});
    test::expect_gradients_match_finite_differences(
        [&](const std::vector<torch::Tensor>& x) { return alignment_loss(o_full, x[0], spec_for("commitment", loss, 0.7)); },
        {o_sparse});
  }
}

TEST(AlignmentLoss, DualStreamModelSendsAlignmentGradientsIntoTheAttentionProjections) {
  config::ModelConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 50;
  c.init_std = 0.2;
  model::LlamaForCausalLM m(c);
  m->initialize(3);
  torch::manual_seed(34);
  auto tokens = torch::randint(0, 50, {2, 40}, torch::kInt64);
  for (auto mode : {Mode::kFull, Mode::kSparse}) {
    model::ForwardOptions options;
    options.mode = mode;
    options.dual_stream = true;
    options.align = spec_for("both");
    options.sparse = {4, 2, Selection::kGroup};  // 10 blocks, budget 2: sparse differs from full
    options.query_chunk = 16;
    auto result = m->forward(tokens, options);
    ASSERT_EQ(result.layer_align.size(), 2u);
    EXPECT_GT(result.align.item<double>(), 0);
    std::vector<torch::Tensor> projections;
    for (const std::string name : {"q_proj", "k_proj", "v_proj", "g_proj"}) {
      projections.push_back(m->named_parameters()["model.layers.0.self_attn." + name + ".weight"]);
    }
    auto grads = torch::autograd::grad({result.align}, projections);
    for (size_t n = 0; n < grads.size(); ++n) {
      EXPECT_TRUE(torch::isfinite(grads[n]).all().item<bool>()) << n;
      EXPECT_GT(grads[n].abs().sum().item<double>(), 0) << "projection " << n << " mode " << mode_name(mode);
    }
  }
}

}  // namespace
}  // namespace ssa::attention
