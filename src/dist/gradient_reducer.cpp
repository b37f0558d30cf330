#include "ssa/dist/gradient_reducer.h"

#include <fmt/format.h>

namespace ssa::dist {

GradientReducer::GradientReducer(ProcessGroup& group, BucketLayout layout, std::vector<torch::Tensor> parameters,
                                 std::function<torch::Tensor(size_t)> accumulated, bool scatter,
                                 torch::ScalarType reduce_dtype)
    : group_(group),
      layout_(std::move(layout)),
      parameters_(std::move(parameters)),
      accumulated_(std::move(accumulated)),
      scatter_(scatter),
      reduce_dtype_(reduce_dtype),
      calls_(parameters_.size(), 0),
      missing_(layout_.buckets.size(), 0),
      buffers_(layout_.buckets.size()),
      sent_(layout_.buckets.size()),
      results_(layout_.buckets.size()),
      in_flight_(layout_.buckets.size()) {
  for (size_t i = 0; i < parameters_.size(); ++i) {
    hook_handles_.push_back(parameters_[i].register_hook([this, i](const torch::Tensor& grad) { on_gradient(i, grad); }));
  }
}

GradientReducer::~GradientReducer() {
  for (size_t i = 0; i < parameters_.size(); ++i) parameters_[i].remove_hook(hook_handles_[i]);
}

torch::Tensor& GradientReducer::buffer(size_t bucket) {
  auto& b = buffers_[bucket];
  if (!b.defined()) {
    b = torch::zeros({layout_.buckets[bucket].padded}, parameters_.front().options().dtype(torch::kFloat32));
  }
  return b;
}

void GradientReducer::add_accumulated(size_t i) {
  if (!with_accumulated_) return;
  const torch::Tensor sum = accumulated_(i);
  if (!sum.defined()) return;
  const auto& slot = layout_.slots[i];
  buffer(slot.bucket).narrow(0, slot.offset, slot.numel).add_(sum.reshape({-1}));
}

void GradientReducer::arm(bool with_accumulated) {
  armed_ = true;
  with_accumulated_ = with_accumulated;
  std::fill(calls_.begin(), calls_.end(), 0);
  next_launch_ = 0;
  for (size_t b = 0; b < layout_.buckets.size(); ++b) {
    missing_[b] = static_cast<int64_t>(layout_.buckets[b].parameters.size());
    results_[b] = torch::Tensor();
  }
}

void GradientReducer::on_gradient(size_t i, const torch::Tensor& grad) {
  if (!armed_) return;
  torch::NoGradGuard no_grad;
  const auto& slot = layout_.slots[i];
  if (slot.bucket < next_launch_) {
    throw std::logic_error(fmt::format("data-parallel reduction: parameter {} received a gradient after its bucket was "
                                       "reduced (the backward graph changed between micro-batches)",
                                       i));
  }
  buffer(slot.bucket).narrow(0, slot.offset, slot.numel).add_(grad.reshape({-1}));
  if (calls_[i]++ == 0) add_accumulated(i);
  if (!expected_calls_.empty() && calls_[i] == expected_calls_[i]) {
    --missing_[slot.bucket];
    launch_ready();
  }
}

void GradientReducer::launch_ready() {
  while (next_launch_ < layout_.buckets.size() && missing_[next_launch_] == 0) launch(next_launch_++);
}

void GradientReducer::launch(size_t b) {
  auto& sums = buffer(b);
  sent_[b] = reduce_dtype_ == torch::kFloat32 ? sums : sums.to(reduce_dtype_);
  const std::string what = fmt::format("gradient reduction (bucket {})", b);
  if (scatter_) {
    results_[b] = torch::empty({layout_.chunk(b)}, sent_[b].options());
    in_flight_[b] = group_.reduce_scatter(results_[b], sent_[b], what);
  } else {
    results_[b] = sent_[b];
    in_flight_[b] = group_.all_reduce(sent_[b], what);
  }
}

void GradientReducer::launch_remaining() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (calls_[i] == 0) add_accumulated(i);
  }
  if (expected_calls_.empty()) expected_calls_ = calls_;
  while (next_launch_ < layout_.buckets.size()) launch(next_launch_++);
  armed_ = false;
}

void GradientReducer::wait() {
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < layout_.buckets.size(); ++b) {
    in_flight_[b].wait();
    if (results_[b].scalar_type() != torch::kFloat32) results_[b] = results_[b].to(torch::kFloat32);
    // The bucket buffers are needed again only by the next reduced backward pass.
    buffers_[b] = torch::Tensor();
    sent_[b] = torch::Tensor();
  }
}

}  // namespace ssa::dist
