// Block selection (routing) of MoBA-style sparse attention, ssa-method.md section 2 steps 1-4, on
// the GPU: block means of the keys, scores of every query against every past block and an exact
// streaming top-k, fused so that no [T, num_blocks] score tensor exists in device memory.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ssa::kernels {

struct BlockSelectShape {
  int64_t batch = 0;
  int64_t length = 0;   // T
  int64_t q_heads = 0;  // Hq
  int64_t kv_heads = 0; // Hkv; Hq / Hkv (the group) must be at most 16
  int64_t head_dim = 0; // 64 or 128
  int64_t block_size = 0;
  int64_t slots = 0;    // K = min(topk, ceil(T / block_size)), at most 64
  bool group = true;    // `group` (one selection per KV head) or `head` (one per query head)
};

// Bytes of device workspace that block_select needs (the block means).
size_t block_select_workspace_bytes(const BlockSelectShape& shape);

// q [B, T, Hq, D], k [B, T, Hkv, D] bf16 contiguous; writes selection int32
// [B, T, H_sel, K] (H_sel = Hkv for group, Hq for head): entry 0 the current block, then the past
// blocks by decreasing importance, -1 where fewer exist. `workspace` holds
// block_select_workspace_bytes(shape) bytes, 16-byte aligned. `document_start` (int32 [B, T], the
// first token of each token's document in its row, or nullptr for none): past block j is a
// candidate of token t only when j >= document_start[t] / block_size.
void block_select(const __nv_bfloat16* q, const __nv_bfloat16* k, int32_t* selection, void* workspace,
                  const BlockSelectShape& shape, cudaStream_t stream, const int32_t* document_start = nullptr);

}  // namespace ssa::kernels
