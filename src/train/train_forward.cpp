#include "ssa/train/train_forward.h"

#include <memory>

#include "ssa/attention/document_mask.h"
#include "ssa/train/activation_checkpoint.h"
#include "ssa/train/linear_cross_entropy.h"

namespace ssa::train {
TrainForward::TrainForward(model::LlamaForCausalLM model, const std::string& checkpointing, int64_t every,
                           bool keep_attention)
    : model_(std::move(model)), rope_(model::rope_parameters(model_->config())), checkpointing_(checkpointing),
      every_(every), keep_attention_(keep_attention) {
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
  const attention::DocumentSpans documents = model::forward_document_spans(options, document_starts);

  std::vector<torch::Tensor> layer_align;
  auto h = m.model->embed_tokens(batch.inputs);
  for (int64_t l = 0; l < num_layers; ++l) {
    // Captures by value: a checkpointed layer runs again in backward, after this call returned,
    // with what its first run kept (model::KeptLayer).
    auto layer = m.model->layers->ptr<model::LlamaDecoderLayerImpl>(l);
    std::shared_ptr<model::KeptLayer> kept;
    if (checkpointed(l)) {
      kept = std::make_shared<model::KeptLayer>();
      kept->attention = keep_attention_;
    }
    const Segment run_layer = [layer, options, rope, document_starts, documents, l, num_layers,
                               kept](const std::vector<torch::Tensor>& in) {
      model::ForwardResult result;
      if (options.dual_stream) result.layer_align.resize(num_layers);
      model::LayerContext context{options, rope, result, document_starts, documents, kept.get()};
      std::vector<torch::Tensor> out{layer->forward(in[0], context, l)};
      if (options.dual_stream) out.push_back(result.layer_align[l].to(torch::kFloat32));
      return out;
    };
    auto out = checkpointed(l) ? checkpoint(run_layer, {h}) : run_layer({h});
    h = out[0];
    if (options.dual_stream) layer_align.push_back(out[1]);
  }
  h = m.model->norm(h, options.fused_kernels);

  MicroBatchLoss loss;
  if (options.dual_stream) loss.align = torch::stack(layer_align).mean();
  loss.ce_sum = linear_cross_entropy_sum(h, m.output_weight(), batch.targets, MicroBatch::kIgnoreTarget,
                                         /*chunk_rows=*/0, options.fused_kernels);
  return loss;
}

}  // namespace ssa::train
