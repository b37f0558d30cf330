// Where every parameter's gradient lives during the reduction, and which elements a rank owns
// under ZeRO. Parameters are grouped whole into buckets of about dist.bucket_mb, filled from the
// last parameter backwards (the backward pass produces gradients roughly in reverse order, so
// bucket 0 completes first); a bucket is one flat buffer, padded to a multiple of the world
// size so it splits into equal chunks, chunk r belonging to rank r. A rank's shard is its chunk
// of every bucket; the optimizer state of a chunk is kept per parameter piece, in the
// coordinates of the flattened parameter, so any other layout can read it back.
#pragma once

#include <cstdint>
#include <vector>

namespace ssa::dist {

struct Bucket {
  std::vector<size_t> parameters;  // indices, in the order they are laid out in the buffer
  int64_t elements = 0;            // sum of their sizes
  int64_t padded = 0;              // elements rounded up to a multiple of the world size
};

struct ParameterSlot {
  size_t bucket = 0;
  int64_t offset = 0;  // first element in the bucket's buffer
  int64_t numel = 0;
};

struct BucketLayout {
  int64_t world = 1;
  std::vector<Bucket> buckets;
  std::vector<ParameterSlot> slots;  // per parameter index

  int64_t chunk(size_t bucket) const { return buckets[bucket].padded / world; }
};

// `numels` per parameter in registration order; a bucket holds parameters until adding the next
// would pass `bucket_elements` (a larger parameter gets a bucket of its own).
BucketLayout assign_buckets(const std::vector<int64_t>& numels, int64_t bucket_elements, int64_t world);

// Elements [begin, end) of flattened parameter `parameter`, stored at `bucket_offset` of `bucket`.
struct ShardPiece {
  size_t parameter = 0;
  int64_t begin = 0, end = 0;
  size_t bucket = 0;
  int64_t bucket_offset = 0;
};

// The pieces of rank `rank`'s chunks, bucket by bucket (padding owns no piece).
std::vector<ShardPiece> shard_pieces(const BucketLayout& layout, int64_t rank);

}  // namespace ssa::dist
