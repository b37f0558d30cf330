#include "ssa/train/activation_checkpoint.h"

#include <torch/csrc/autograd/custom_function.h>

namespace ssa::train {
namespace {

// The segment travels to backward inside the autograd context (IValue capsules carry any
// intrusive_ptr<CustomClassHolder>).
struct SegmentHolder : torch::CustomClassHolder {
  explicit SegmentHolder(Segment s) : segment(std::move(s)) {}
  Segment segment;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, at::TensorList inputs,
                                                c10::intrusive_ptr<SegmentHolder> holder) {
    // Function::apply runs forward with grad mode off: no graph is recorded inside.
    std::vector<torch::Tensor> detached(inputs.begin(), inputs.end());
    auto outputs = holder->segment(detached);
    ctx->save_for_backward(std::vector<torch::Tensor>(inputs.begin(), inputs.end()));
    ctx->saved_data["segment"] = c10::IValue::make_capsule(holder);
    return outputs;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    auto holder = c10::static_intrusive_pointer_cast<SegmentHolder>(ctx->saved_data["segment"].toCapsule());
    std::vector<torch::Tensor> inputs;
    for (const auto& input : saved) {
      auto copy = input.detach();
      copy.requires_grad_(input.requires_grad());
      inputs.push_back(copy);
    }
    std::vector<torch::Tensor> outputs;
    {
      torch::AutoGradMode enable(true);
      outputs = holder->segment(inputs);
    }
    std::vector<torch::Tensor> roots, grads;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].requires_grad() && grad_outputs[i].defined()) {
        roots.push_back(outputs[i]);
        grads.push_back(grad_outputs[i]);
      }
    }
    if (!roots.empty()) torch::autograd::backward(roots, grads);
    torch::autograd::variable_list input_grads;
    for (auto& input : inputs) input_grads.push_back(input.requires_grad() ? input.grad() : torch::Tensor());
    input_grads.emplace_back();  // the holder
    return input_grads;
  }
};

}  // namespace

std::vector<torch::Tensor> checkpoint(const Segment& segment, const std::vector<torch::Tensor>& inputs) {
  if (!torch::GradMode::is_enabled()) return segment(inputs);
  return CheckpointFunction::apply(at::TensorList(inputs), c10::make_intrusive<SegmentHolder>(segment));
}

}  // namespace ssa::train
