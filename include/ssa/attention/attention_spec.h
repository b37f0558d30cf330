// What an attention call computes: the mode (full or block-sparse), the sparse budget and the
// implementation. Shared by the model, the reference path and the CUDA kernels.
#pragma once

#include <cstdint>
#include <string>

#include "ssa/config/config.h"

namespace ssa::attention {

enum class Mode { kFull, kSparse };
enum class Selection { kGroup, kHead };  // see ssa-method.md section 2.3
enum class Backend { kAuto, kReference, kCuda };

struct SparseSpec {
  int64_t block_size = 16;
  int64_t topk = 16;  // blocks per query, current block included
  Selection selection = Selection::kGroup;
};

SparseSpec sparse_spec(const config::AttentionConfig& config);
Mode parse_mode(const std::string& name);        // "full" | "sparse"
Selection parse_selection(const std::string& name);  // "group" | "head"
Backend parse_backend(const std::string& name);  // "auto" | "reference" | "cuda"
const char* mode_name(Mode mode);

}  // namespace ssa::attention
