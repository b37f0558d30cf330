#include "ssa/dist/bucket_layout.h"

#include <algorithm>
#include <stdexcept>

namespace ssa::dist {

BucketLayout assign_buckets(const std::vector<int64_t>& numels, int64_t bucket_elements, int64_t world) {
  if (world < 1 || bucket_elements < 1) throw std::invalid_argument("assign_buckets: world and bucket size must be positive");
  BucketLayout layout;
  layout.world = world;
  layout.slots.resize(numels.size());
  for (size_t k = numels.size(); k-- > 0;) {
    if (layout.buckets.empty() ||
        (!layout.buckets.back().parameters.empty() && layout.buckets.back().elements + numels[k] > bucket_elements)) {
      layout.buckets.emplace_back();
    }
    Bucket& bucket = layout.buckets.back();
    layout.slots[k] = {layout.buckets.size() - 1, bucket.elements, numels[k]};
    bucket.parameters.push_back(k);
    bucket.elements += numels[k];
  }
  for (auto& bucket : layout.buckets) bucket.padded = (bucket.elements + world - 1) / world * world;
  return layout;
}

std::vector<ShardPiece> shard_pieces(const BucketLayout& layout, int64_t rank) {
  std::vector<ShardPiece> pieces;
  for (size_t b = 0; b < layout.buckets.size(); ++b) {
    const int64_t first = rank * layout.chunk(b), last = first + layout.chunk(b);
    for (size_t k : layout.buckets[b].parameters) {
      const auto& slot = layout.slots[k];
      const int64_t begin = std::max(first, slot.offset), end = std::min(last, slot.offset + slot.numel);
      if (begin < end) pieces.push_back({k, begin - slot.offset, end - slot.offset, b, begin});
    }
  }
  return pieces;
}

}  // namespace ssa::dist
