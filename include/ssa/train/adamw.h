// AdamW (Loshchilov and Hutter, decoupled weight decay) on fp32 master weights, written out
// instead of using torch::optim::AdamW so that the update order, the state tensors and their
// names are ours: the state is saved to safetensors and restored bit for bit, and parameters
// that take no decay are chosen per tensor rather than per parameter group.
// The update matches torch.optim.AdamW (amsgrad off):
//   p <- p * (1 - lr * wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// On a CUDA build with `fused` and CUDA parameters, the update is kernels/adamw.cu (a few
// launches for all tensors, one pass over p, g, m and v, gradients read as bf16 where training
// left them so, and the bf16 compute copy of each weight written in the same pass); elsewhere,
// one update per tensor from ATen ops, which is also the tests' reference.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ssa/compat/torch_compat.h"
#include "ssa/config/config.h"
#include "ssa/model/tensor_file.h"

namespace ssa::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool fused = true;
};

AdamWOptions adamw_options(const config::OptimConfig& optim);

// The scalars of one update (t = the update's count), in double as the host computes them.
struct AdamWStepScalars {
  double beta1, beta2, eps;
  double decay_factor;  // 1 - lr * weight_decay, for tensors that decay
  double step_size;     // lr / (1 - beta1^t)
  double bias2_sqrt;    // sqrt(1 - beta2^t)
  double grad_scale;
};

// Whether the named parameter takes weight decay: never 1-D tensors (norm weights); the token
// embedding and an untied LM head only when `embedding_weight_decay`.
bool takes_weight_decay(const std::string& name, const torch::Tensor& parameter, bool embedding_weight_decay);

class AdamW {
 public:
  // `parameters`: fp32 master tensors updated in place; `decay[i]` says whether the i-th decays.
  AdamW(model::NamedTensors parameters, std::vector<bool> decay, AdamWOptions options);

  // One update at learning rate `lr` from `grads` (same order and shapes as the parameters;
  // fp32, or bf16 as a step of one micro-batch leaves them), each multiplied by `grad_scale`
  // first (gradient clipping). With `compute_copies` (one per parameter: the model's bf16
  // weights), each updated parameter is also written into its copy. The kernel writes through raw
  // pointers, so autograd's version counters of what it writes do not move: call it, as an
  // optimizer step is called, when no graph that saved those tensors is still alive.
  void step(double lr, const std::vector<torch::Tensor>& grads, double grad_scale,
            const std::vector<torch::Tensor>& compute_copies = {});

  // Updates applied so far (t of the bias corrections).
  int64_t steps() const { return steps_; }

  // Whether step() runs the fused kernel (options.fused, CUDA parameters, a CUDA build).
  bool fused() const { return fused_; }

  // "exp_avg.<name>" and "exp_avg_sq.<name>" for every parameter (CPU copies, never aliases).
  model::NamedTensors state_tensors() const;

  // Restores what state_tensors() returned and the update count. Throws FormatError naming
  // `origin` when a tensor is missing or has another shape or dtype.
  void load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t steps, const std::string& origin);

 private:
  model::NamedTensors parameters_;
  std::vector<bool> decay_;
  AdamWOptions options_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  int64_t steps_ = 0;
  bool fused_ = false;

  void unfused_step(const AdamWStepScalars& s, const std::vector<torch::Tensor>& grads,
                    const std::vector<torch::Tensor>& compute_copies);
};

#if SSA_HAVE_CUDA_KERNELS
// AdamW::step's update through kernels/adamw.cu: all tensors on one CUDA device, parameters and
// moments contiguous float32. Gradients other than contiguous float32 or bf16 are converted
// first; copies other than contiguous bf16 are written with copy_ after the update.
void adamw_update_cuda(const model::NamedTensors& parameters, const std::vector<torch::Tensor>& grads,
                       const std::vector<torch::Tensor>& exp_avg, const std::vector<torch::Tensor>& exp_avg_sq,
                       const std::vector<torch::Tensor>& compute_copies, const std::vector<bool>& decay,
                       const AdamWStepScalars& scalars);
#endif

}  // namespace ssa::train
