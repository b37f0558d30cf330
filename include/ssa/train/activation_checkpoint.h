// Activation checkpointing for LibTorch C++, which has no torch.utils.checkpoint: a custom
// autograd Function runs a segment of the network without building a graph (so its inner
// activations are freed at once) and, in the backward pass, runs it again with autograd on and
// back-propagates through the recomputed graph. Gradients of the tensors the segment closes
// over (the model's parameters) accumulate into their .grad as in a normal backward.
//
// The segment must compute exactly the same thing both times: it may not draw random numbers
// or depend on state that changes between forward and backward (our decoder layers are
// deterministic functions of their input, the weights and the ForwardOptions they close over).
#pragma once

#include <functional>
#include <vector>

#include "ssa/compat/torch_compat.h"

namespace ssa::train {

using Segment = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>& inputs)>;

// The outputs of `segment(inputs)`, connected to `inputs` and to the segment's parameters for
// the backward pass, without keeping the segment's intermediate activations. Outputs must be
// floating-point tensors. Without grad mode it simply calls the segment.
std::vector<torch::Tensor> checkpoint(const Segment& segment, const std::vector<torch::Tensor>& inputs);

}  // namespace ssa::train
