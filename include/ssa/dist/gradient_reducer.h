// Data-parallel gradient reduction that overlaps the backward pass. A hook on every compute
// parameter adds the gradient arriving for it into its bucket (bucket_layout.h); when every
// parameter of a bucket is complete the bucket's reduction starts at once — an all-reduce
// (every rank gets the sum) or a reduce-scatter (each rank gets the sum of its chunk) — while
// autograd goes on with earlier layers. Buckets start in index order on every rank, so all
// ranks issue the same collectives in the same order whatever the hooks' timing.
//
// A parameter's hook may run more than once per backward pass (activation checkpointing
// recomputes layers in nested backward calls, the chunked loss reaches the LM head once per
// chunk); how many times is learned on the first reduced pass, which therefore reduces only
// after its backward ends. Gradients are summed in fp32; dist.reduce_dtype bf16 halves the
// traffic by sending bf16 copies.
#pragma once

#include <functional>
#include <vector>

#include "ssa/compat/torch_compat.h"
#include "ssa/dist/bucket_layout.h"
#include "ssa/dist/process_group.h"

namespace ssa::dist {

class GradientReducer {
 public:
  // `parameters`: the model's compute parameters in layout order. `accumulated(i)`: the fp32 sum
  // of parameter i's gradients from earlier micro-batches (undefined when none). `scatter`:
  // reduce-scatter instead of all-reduce.
  GradientReducer(ProcessGroup& group, BucketLayout layout, std::vector<torch::Tensor> parameters,
                  std::function<torch::Tensor(size_t)> accumulated, bool scatter, torch::ScalarType reduce_dtype);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The next backward pass reduces its gradients, plus accumulated() when `with_accumulated`.
  void arm(bool with_accumulated);
  // After that backward pass: starts the buckets still waiting (parameters that got no
  // gradient contribute zeros or their accumulated sum).
  void launch_remaining();
  // Waits for every reduction; then result(b) is bucket b's sum over the ranks (fp32): the whole
  // bucket, or this rank's chunk when scattering.
  void wait();
  const torch::Tensor& result(size_t bucket) const { return results_[bucket]; }

  const BucketLayout& layout() const { return layout_; }

 private:
  void on_gradient(size_t parameter, const torch::Tensor& grad);
  torch::Tensor& buffer(size_t bucket);
  void add_accumulated(size_t parameter);
  void launch_ready();
  void launch(size_t bucket);

  ProcessGroup& group_;
  BucketLayout layout_;
  std::vector<torch::Tensor> parameters_;
  std::vector<unsigned> hook_handles_;
  std::function<torch::Tensor(size_t)> accumulated_;
  bool scatter_;
  torch::ScalarType reduce_dtype_;

  bool armed_ = false;
  bool with_accumulated_ = false;
  std::vector<int64_t> expected_calls_;  // per parameter; empty until learned
  std::vector<int64_t> calls_;
  std::vector<int64_t> missing_;  // per bucket: parameters not yet complete
  size_t next_launch_ = 0;
  std::vector<torch::Tensor> buffers_;  // fp32 sums per bucket, allocated at the first gradient
  std::vector<torch::Tensor> sent_;     // what travels (the buffer or its bf16 copy)
  std::vector<torch::Tensor> results_;
  std::vector<Collective> in_flight_;
};

}  // namespace ssa::dist
