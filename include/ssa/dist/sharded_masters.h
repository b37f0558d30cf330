// ZeRO stages 1 and 2: the fp32 master weights move into one flat buffer per bucket (same layout
// as the gradient buckets), each rank updates only its chunk of every bucket with AdamW, and an
// all-gather afterwards brings every rank the whole updated weights. In fp32 training the
// masters are the model's parameters, which then live in these buffers too.
#pragma once

#include <vector>

#include "ssa/compat/torch_compat.h"
#include "ssa/dist/bucket_layout.h"
#include "ssa/dist/process_group.h"
#include "ssa/model/tensor_file.h"

namespace ssa::dist {

class ShardedMasters {
 public:
  // Re-points every master tensor (same values) into the bucket buffers.
  ShardedMasters(ProcessGroup& group, const BucketLayout& layout, const model::NamedTensors& masters);

  // This rank's pieces (shard_pieces order): 1-D views into the buffers, named after their
  // parameter, for AdamW to update in place.
  const model::NamedTensors& pieces() const { return pieces_; }
  const std::vector<ShardPiece>& piece_ranges() const { return ranges_; }

  // After the update of the pieces: every rank receives every chunk.
  void gather();

 private:
  ProcessGroup& group_;
  BucketLayout layout_;
  std::vector<torch::Tensor> buffers_;
  std::vector<ShardPiece> ranges_;
  model::NamedTensors pieces_;
};

}  // namespace ssa::dist
