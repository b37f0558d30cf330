// The weights the optimizer updates and the gradients it reads, for one model replica.
// fp32 training: the model's own parameters are the master weights and autograd accumulates
// their gradients across micro-batches. bf16 training: the model holds bf16 copies used for
// compute; fp32 masters and fp32 gradient sums live here, the bf16 gradients of every micro-batch
// but the last are moved into the sums (so accumulation over many micro-batches loses no
// precision), and the masters are copied back into the model after every update (by the
// optimizer itself where it can, see compute_copies()).
//
// The sums are never cleared with a pass over memory: each tensor's first gradient of a step is
// copied into its sum, later ones added. A step of one micro-batch never touches the sums (they
// are not even allocated): the optimizer reads the bf16 gradients as autograd left them.
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

  // After the backward of a micro-batch that is not the step's last: moves the bf16 gradients
  // into the fp32 sums (no-op in fp32).
  void accumulate();

  // The step's gradients, in parameter order, after its last backward: a gradient that has a sum
  // gets the last micro-batch's added and is the fp32 sum; one that has none is the model's
  // gradient as autograd left it (bf16 in bf16 training); zeros where none arrived.
  std::vector<torch::Tensor> gradients();

  // Starts the next step: drops the model's gradients and marks every sum empty.
  void zero_gradients();

  // The fp32 sum of parameter i's gradients from the micro-batches accumulated so far (the
  // model's .grad in fp32 training); undefined when there is none.
  torch::Tensor accumulated_gradient(size_t i) const;

  // Frees the fp32 gradient sums of bf16 training, for a caller that sums gradients elsewhere
  // (ZeRO 2 keeps only its shard); accumulate() and gradients() must not be called afterwards.
  void discard_gradient_sums();

  // After an optimizer update: copies the masters into the bf16 model (no-op in fp32).
  void publish();

  // The model's bf16 parameters, in master order, for an optimizer that writes them while it
  // updates the masters (instead of publish()); empty in fp32 training.
  std::vector<torch::Tensor> compute_copies() const;

  // HF-named fp32 master tensors (the ones the optimizer updates in place).
  const model::NamedTensors& masters() const { return masters_; }

  // Overwrites the masters (and the model) from a checkpoint's tensors; FormatError naming
  // `origin` on a missing tensor or another shape.
  void load(const std::map<std::string, torch::Tensor>& tensors, const std::string& origin);


 private:
  model::LlamaForCausalLM model_;
  std::vector<torch::Tensor> model_parameters_;
  model::NamedTensors masters_;
  bool separate_ = false;                     // bf16 training: masters apart from the model
  bool sums_discarded_ = false;
  std::vector<torch::Tensor> gradient_sums_;  // bf16 training, allocated on first use
  std::vector<bool> summed_;                  // whether gradient_sums_[i] holds this step's sum

  void add_to_sum(size_t i, const torch::Tensor& grad);
};

}  // namespace ssa::train
