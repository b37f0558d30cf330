#include "ssa/dist/sharded_masters.h"

#include <fmt/format.h>

namespace ssa::dist {

ShardedMasters::ShardedMasters(ProcessGroup& group, const BucketLayout& layout, const model::NamedTensors& masters)
    : group_(group), layout_(layout), ranges_(shard_pieces(layout, group.rank())) {
  torch::NoGradGuard no_grad;
  const auto options = masters.front().second.options().dtype(torch::kFloat32);
  for (const auto& bucket : layout_.buckets) buffers_.push_back(torch::zeros({bucket.padded}, options));
  for (size_t i = 0; i < masters.size(); ++i) {
    const auto& master = masters[i].second;
    const auto& slot = layout_.slots[i];
    auto view = buffers_[slot.bucket].narrow(0, slot.offset, slot.numel);
    view.copy_(master.reshape({-1}));
    // set_data keeps the tensor object (held by the model, MasterWeights and autograd) and swaps
    // its storage for the buffer's.
    master.set_data(view.view(master.sizes()));
  }
  for (const auto& piece : ranges_) {
    pieces_.emplace_back(masters[piece.parameter].first,
                         buffers_[piece.bucket].narrow(0, piece.bucket_offset, piece.end - piece.begin));
  }
}

void ShardedMasters::gather() {
  torch::NoGradGuard no_grad;
  std::vector<Collective> pending;
  std::vector<torch::Tensor> sent;  // alive until the waits: the input must not alias the output
  for (size_t b = 0; b < buffers_.size(); ++b) {
    const int64_t chunk = layout_.chunk(b);
    sent.push_back(buffers_[b].narrow(0, group_.rank() * chunk, chunk).clone());
    pending.push_back(group_.all_gather(buffers_[b], sent.back(), fmt::format("parameter all-gather (bucket {})", b)));
  }
  for (auto& c : pending) c.wait();
}

}  // namespace ssa::dist
