// The weights the optimizer updates and the gradients it reads, for one model replica.
// fp32 training: the model's own parameters are the master weights and autograd accumulates
// their gradients across micro-batches. bf16 training: the model holds bf16 copies used for
// compute; fp32 masters and fp32 gradient sums live here, each micro-batch's bf16 gradients
// are added to the sums (so accumulation over many micro-batches loses no precision) and the
// masters are copied back into the model after every update.
#pragma once

#include <vector>

#include "ssa/compat/torch_compat.h"
#include "ssa/model/llama.h"
#include "ssa/model/tensor_file.h"

namespace ssa::train {

class MasterWeights {
 public:
  // Casts the model to `compute_dtype` on its device (fp32 keeps it as it is).
  MasterWeights(model::LlamaForCausalLM& model, torch::ScalarType compute_dtype);

  // After a micro-batch's backward: moves bf16 gradients into the fp32 sums (no-op in fp32).
  void accumulate();

  // The summed fp32 gradients of the step, in parameter order (zeros where none arrived).
  std::vector<torch::Tensor> gradients();

  void zero_gradients();

  // The fp32 sum of parameter i's gradients from the micro-batches accumulated so far (the
  // model's .grad in fp32 training); undefined when there is none.
  torch::Tensor accumulated_gradient(size_t i) const;

  // Frees the fp32 gradient sums of bf16 training, for a caller that sums gradients elsewhere
  // (ZeRO 2 keeps only its shard); accumulate() and gradients() must not be called afterwards.
  void discard_gradient_sums();

  // After an optimizer update: copies the masters into the bf16 model (no-op in fp32).
  void publish();

  // HF-named fp32 master tensors (the ones the optimizer updates in place).
  const model::NamedTensors& masters() const { return masters_; }

  // Overwrites the masters (and the model) from a checkpoint's tensors; FormatError naming
  // `origin` on a missing tensor or another shape.
  void load(const std::map<std::string, torch::Tensor>& tensors, const std::string& origin);


 private:
  model::LlamaForCausalLM model_;
  std::vector<torch::Tensor> model_parameters_;
  model::NamedTensors masters_;
  std::vector<torch::Tensor> gradient_sums_;  // bf16 mode only
};

}  // namespace ssa::train
