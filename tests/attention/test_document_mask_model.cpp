// Document masking through the model and the training forward: with attention.document_mask a
// packed row of documents gives the hidden states, alignment losses, cross entropy and parameter
// gradients of the documents run one by one, in both SSA streams (reference path, float64).
#include <gtest/gtest.h>

#include "ssa/model/llama.h"
#include "ssa/train/train_forward.h"

namespace ssa::model {
namespace {

constexpr int64_t kBlock = 4;
// Every document but the last fills whole blocks, so the row's blocks are its documents' blocks.
const std::vector<int64_t> kDocuments = {16, 20, 9};
constexpr int64_t kRowLength = 45;

config::ModelConfig tiny_config() {
  config::ModelConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 64;
  c.max_position_embeddings = 256;
  c.gate = "headwise";
  return c;
}

LlamaForCausalLM tiny_model() {
  LlamaForCausalLM model(tiny_config());
  model->initialize(5);
  model->to(torch::kFloat64);
  return model;
}

ForwardOptions ssa_options(attention::Mode mode) {
  ForwardOptions options;
  options.mode = mode;
  options.dual_stream = true;
  options.sparse = {kBlock, 3, attention::Selection::kGroup};
  options.backend = attention::Backend::kReference;
  options.query_chunk = 7;
  return options;
}

torch::Tensor packed_positions() {
  std::vector<torch::Tensor> pieces;
  for (int64_t length : kDocuments) pieces.push_back(torch::arange(length, torch::kInt64));
  return torch::cat(pieces).unsqueeze(0);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Through backward() and .grad, as the trainer reads them: a checkpointed layer's recomputation
// accumulates its parameters' gradients there.
std::vector<torch::Tensor> parameter_gradients(LlamaForCausalLM& model, const torch::Tensor& loss) {
  for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (const auto& p : model->parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return grads;
}

// Sums gradient lists element-wise (undefined entries count as zero).
void accumulate(std::vector<torch::Tensor>& sum, const std::vector<torch::Tensor>& grads) {
  if (sum.empty()) sum.resize(grads.size());
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) continue;
    sum[i] = sum[i].defined() ? sum[i] + grads[i] : grads[i];
  }
}

void expect_same_gradients(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b,
                           double tolerance) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].defined(), b[i].defined()) << "parameter " << i;
    if (a[i].defined()) {
      EXPECT_LT(max_abs_diff(a[i], b[i]), tolerance) << "parameter " << i;
    }
  }
}

TEST(DocumentMaskModel, PackedRowEqualsTheDocumentsAloneInBothStreams) {
  torch::manual_seed(41);
  auto model = tiny_model();
  const auto tokens = torch::randint(0, 64, {1, kRowLength}, torch::kInt64);
  const auto weight = torch::randn({1, kRowLength, 32}, torch::kFloat64);
  for (auto mode : {attention::Mode::kFull, attention::Mode::kSparse}) {
    auto packed_options = ssa_options(mode);
    packed_options.position_ids = packed_positions();
    packed_options.document_mask = true;
    const auto packed = model->forward(tokens, packed_options);
    // The alignment loss is a mean over tokens: the row's is the length-weighted mean of the documents'.
    const auto packed_grads =
        parameter_gradients(model, (packed.hidden * weight).sum() + packed.align * static_cast<double>(kRowLength));

    std::vector<torch::Tensor> summed_grads;
    std::vector<torch::Tensor> weighted_align(2, torch::zeros({}, torch::kFloat64));
    int64_t offset = 0;
    for (int64_t length : kDocuments) {
      const auto alone = model->forward(tokens.narrow(1, offset, length), ssa_options(mode));
      EXPECT_LT(max_abs_diff(packed.hidden.narrow(1, offset, length), alone.hidden), 1e-10)
          << attention::mode_name(mode) << " document at " << offset;
      for (size_t l = 0; l < 2; ++l) {
        weighted_align[l] = weighted_align[l] + alone.layer_align[l].detach() * static_cast<double>(length);
      }
      accumulate(summed_grads,
                 parameter_gradients(model, (alone.hidden * weight.narrow(1, offset, length)).sum() +
                                                alone.align * static_cast<double>(length)));
      offset += length;
    }
    for (size_t l = 0; l < 2; ++l) {
      EXPECT_NEAR(packed.layer_align[l].item<double>(), weighted_align[l].item<double>() / kRowLength, 1e-12)
          << "layer " << l;
    }
    expect_same_gradients(packed_grads, summed_grads, 1e-10);
  }
}

// The trainer's forward derives the documents from the micro-batch's position ids, also when a
// checkpointed layer runs again in the backward pass.
TEST(DocumentMaskModel, TrainingForwardMasksFromTheMicroBatchPositions) {
  torch::manual_seed(42);
  auto model = tiny_model();
  const auto tokens = torch::randint(0, 64, {1, kRowLength}, torch::kInt64);
  const auto targets = torch::randint(0, 64, {1, kRowLength}, torch::kInt64);
  train::TrainForward checkpointed(model, "full", 1);
  train::TrainForward plain(model, "none", 1);
  auto options = ssa_options(attention::Mode::kSparse);
  options.document_mask = true;

  const train::MicroBatch packed_batch{tokens, targets, packed_positions(), kRowLength};
  const auto packed = checkpointed(packed_batch, options);
  const auto packed_grads =
      parameter_gradients(model, packed.ce_sum + packed.align * static_cast<double>(kRowLength));

  double ce_sum = 0, weighted_align = 0;
  std::vector<torch::Tensor> summed_grads;
  int64_t offset = 0;
  for (int64_t length : kDocuments) {
    const train::MicroBatch batch{tokens.narrow(1, offset, length), targets.narrow(1, offset, length),
                                  torch::arange(length, torch::kInt64).unsqueeze(0), length};
    const auto alone = plain(batch, options);
    ce_sum += alone.ce_sum.item<double>();
    weighted_align += alone.align.item<double>() * static_cast<double>(length);
    accumulate(summed_grads, parameter_gradients(model, alone.ce_sum + alone.align * static_cast<double>(length)));
    offset += length;
  }
  // The cross entropy and the alignment loss leave the training forward in float32.
  EXPECT_NEAR(packed.ce_sum.item<double>(), ce_sum, 1e-4);
  EXPECT_NEAR(packed.align.item<double>(), weighted_align / kRowLength, 1e-6 * std::abs(weighted_align));
  expect_same_gradients(packed_grads, summed_grads, 1e-5);

  // Without the mask the later documents see the earlier ones.
  options.document_mask = false;
  EXPECT_GT(std::abs(checkpointed(packed_batch, options).ce_sum.item<double>() - ce_sum), 1e-6);
}

}  // namespace
}  // namespace ssa::model
