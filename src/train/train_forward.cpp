#include "ssa/train/train_forward.h"

#include "ssa/attention/document_mask.h"
#include "ssa/train/activation_checkpoint.h"

namespace ssa::train {
namespace {

torch::Tensor ce_sum(model::LlamaForCausalLMImpl& model, const torch::Tensor& hidden, const torch::Tensor& targets) {
  auto logits = model.logits(hidden).to(torch::kFloat32);
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(MicroBatch::kIgnoreTarget));
}

}  // namespace

TrainForward::TrainForward(model::LlamaForCausalLM model, const std::string& checkpointing, int64_t every)
    : model_(std::move(model)), rope_(model::rope_parameters(model_->config())), checkpointing_(checkpointing),
      every_(every) {
  rope_.inv_freq = rope_.inv_freq.to(model_->model->embed_tokens->weight.device());
}

bool layer_checkpointed(const std::string& checkpointing, int64_t every, int64_t layer) {
  if (checkpointing == "full") return true;
  if (checkpointing == "selective") return layer % every == 0;
  return false;
}

bool TrainForward::checkpointed(int64_t layer) const { return layer_checkpointed(checkpointing_, every_, layer); }

MicroBatchLoss TrainForward::operator()(const MicroBatch& batch, const model::ForwardOptions& options) {
  auto& m = *model_;
  const int64_t num_layers = m.config().num_layers;
  const model::RopeTables rope = model::rope_tables(rope_, batch.positions);
  const torch::Tensor document_starts =
      options.document_mask ? attention::document_starts(batch.positions) : torch::Tensor();

  std::vector<torch::Tensor> layer_align;
  auto h = m.model->embed_tokens(batch.inputs);
  for (int64_t l = 0; l < num_layers; ++l) {
    // Captures by value: a checkpointed layer runs again in backward, after this call returned.
    auto layer = m.model->layers->ptr<model::LlamaDecoderLayerImpl>(l);
    const Segment run_layer = [layer, options, rope, document_starts, l,
                               num_layers](const std::vector<torch::Tensor>& in) {
      model::ForwardResult result;
      if (options.dual_stream) result.layer_align.resize(num_layers);
      model::LayerContext context{options, rope, result, document_starts};
      std::vector<torch::Tensor> out{layer->forward(in[0], context, l)};
      if (options.dual_stream) out.push_back(result.layer_align[l].to(torch::kFloat32));
      return out;
    };
    auto out = checkpointed(l) ? checkpoint(run_layer, {h}) : run_layer({h});
    h = out[0];
    if (options.dual_stream) layer_align.push_back(out[1]);
  }
  h = m.model->norm(h);

  MicroBatchLoss loss;
  if (options.dual_stream) loss.align = torch::stack(layer_align).mean();
  if (checkpointing_ == "none") {
    loss.ce_sum = ce_sum(m, h, batch.targets);
    return loss;
  }
  // Chunks of positions, each recomputed in backward: only one chunk's logits live at a time.
  const int64_t T = h.size(1);
  for (int64_t t0 = 0; t0 < T; t0 += kLogitsChunk) {
    const int64_t n = std::min(kLogitsChunk, T - t0);
    auto targets = batch.targets.narrow(1, t0, n);
    const Segment chunk_loss = [model = model_.ptr(), targets](const std::vector<torch::Tensor>& in) {
      return std::vector<torch::Tensor>{ce_sum(*model, in[0], targets)};
    };
    auto part = checkpoint(chunk_loss, {h.narrow(1, t0, n)})[0];
    loss.ce_sum = loss.ce_sum.defined() ? loss.ce_sum + part : part;
  }
  return loss;
}

}  // namespace ssa::train
