// What data parallelism adds to one optimizer step (train_step.h calls it at each point):
//   zero 0: gradients summed locally over the micro-batches, all-reduced in buckets during the
//           last micro-batch's backward; every rank runs the same AdamW update.
//   zero 1: the same local accumulation, reduce-scattered during the last backward; each rank
//           updates its shard of the fp32 masters (sharded_masters.h) and all-gathers them.
//   zero 2: reduce-scattered during every micro-batch's backward and summed into this rank's
//           shard only, so no full gradient survives a micro-batch; update as zero 1.
// Gradients are reduced once per step (not per micro-batch) except under zero 2. The loss, the
// gradient norm and the non-finite verdict are reduced too, so every rank takes the same
// decisions and rank 0 reports the global values.
//
// Exposed communication: the time the step waits for collectives that no computation hides. The
// compute stream is synchronised before and after every wait for a collective, so the time between
// is communication alone: the reductions still in flight when the backward pass ends, the loss and
// gradient-norm sums, and the parameter all-gather after the update (nothing overlaps it).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ssa/config/config.h"
#include "ssa/dist/gradient_reducer.h"
#include "ssa/dist/optimizer_shards.h"
#include "ssa/dist/process_group.h"
#include "ssa/dist/sharded_masters.h"
#include "ssa/train/adamw.h"
#include "ssa/train/master_weights.h"

namespace ssa::dist {

class DataParallel {
 public:
  DataParallel(ProcessGroup& group, train::MasterWeights& weights, std::vector<torch::Tensor> compute_parameters,
               const config::DistConfig& config);

  ProcessGroup& group() { return group_; }

  // The AdamW of this rank: over every master (zero 0) or over this rank's pieces.
  train::AdamW make_optimizer(const config::OptimConfig& optim) const;
  // The pieces that optimizer's state covers, in its parameter order.
  std::vector<StatePiece> optimizer_pieces() const;
  // Whether that optimizer updates pieces of the masters (zero 1, 2) rather than whole tensors.
  bool shards_optimizer() const { return masters_.has_value(); }

  // Around each micro-batch's backward pass (`last`: the step's last micro-batch).
  void before_backward(bool last);
  void after_backward(bool last);

  // The reduced fp32 gradients, in the optimizer's parameter order.
  std::vector<torch::Tensor> gradients();
  // The global L2 norm of the gradients of every rank's shard together.
  double gradient_norm(const std::vector<torch::Tensor>& gradients);
  // After the optimizer's update: every rank gets the whole new weights (zero 1, 2).
  void after_update();

  // Runs `collective` (which waits for communication) as exposed communication time, under the
  // watchdog (`what` names it in the error).
  void communicate(const std::string& what, const std::function<void()>& collective);
  // The exposed communication time since the last call, in seconds.
  double take_communication_seconds();

 private:
  torch::Tensor shard_view(const torch::Tensor& chunk, const ShardPiece& piece) const;

  ProcessGroup& group_;
  train::MasterWeights& weights_;
  int64_t zero_;
  BucketLayout layout_;
  std::optional<ShardedMasters> masters_;
  GradientReducer reducer_;
  std::vector<torch::Tensor> shard_sums_;  // zero 2: this rank's chunk of every bucket
  torch::Device device_;
  double communication_seconds_ = 0;
};

}  // namespace ssa::dist
