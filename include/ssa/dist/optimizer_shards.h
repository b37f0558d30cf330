// The AdamW state of a sharded (ZeRO 1/2) run in its checkpoint: every rank writes
// optimizer-rank-RRRRR-of-WWWWW.safetensors with the moments of its pieces as 1-D tensors
// "exp_avg.<name>" / "exp_avg_sq.<name>" and, in the metadata, "pieces" = {name: [begin, end]}
// (element ranges of the flattened parameter). Reading asks for any set of pieces and gathers
// them from whichever files hold them, so a run resumes with another world size, another ZeRO
// stage or as one process; an unsharded checkpoint's optimizer.safetensors serves the same way.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "ssa/compat/torch_compat.h"
#include "ssa/model/tensor_file.h"

namespace ssa::dist {

// Elements [begin, end) of the flattened parameter `name`; the optimizer holds them as a tensor
// of `shape` (the parameter's own shape for a whole parameter, else 1-D).
struct StatePiece {
  std::string name;
  int64_t begin = 0, end = 0;
  std::vector<int64_t> shape;
};

// Whole parameters as pieces (an unsharded optimizer).
std::vector<StatePiece> whole_pieces(const model::NamedTensors& parameters);

std::string optimizer_shard_name(int64_t rank, int64_t world);

// Writes this rank's shard into checkpoint folder `folder`. `state` is AdamW::state_tensors()
// of an AdamW over `pieces` (same order).
void write_optimizer_shard(const std::filesystem::path& folder, int64_t rank, int64_t world,
                           const model::NamedTensors& state, const std::vector<StatePiece>& pieces, int64_t updates);

// The AdamW state of `pieces`, named and shaped like AdamW::state_tensors() of an AdamW over
// them: from `whole` (a read optimizer.safetensors) when not empty, else from the folder's shard
// files. FormatError naming the folder when a shard is missing or damaged or the shards do not
// cover a piece.
std::map<std::string, torch::Tensor> read_optimizer_state(const std::filesystem::path& folder,
                                                          const std::map<std::string, torch::Tensor>& whole,
                                                          const std::vector<StatePiece>& pieces);

}  // namespace ssa::dist
