// Block-sparse attention over a given block selection (ssa-method.md section 2 steps 5-6):
// forward and backward, bf16 in and out, float32 accumulation.
//
// Forward, two plans. Query-major: one warp per (batch, token, selection head) streams the K/V of
// the blocks that row selected through shared memory and keeps the online softmax in registers;
// the query heads sharing the selection (the G heads of a KV head under `group`) are the columns
// of a transposed MMA, so their K/V loads are shared; deterministic. Key-major: the selection is
// inverted into lists of the rows that chose each key block; a CTA loads one block and gathers
// those rows, in two passes (row maxima, then exp-sums and P V reduced into float32 buffers).
// Query-major wins when few query heads share a selection relative to the block size
// (choose_forward_plan).
//
// Backward, two plans. dK and dV are always key-major, as the key-major forward: they accumulate
// in registers across hundreds of gathered rows. Fused: the same kernel reduces each row's dQ
// into a float32 buffer. Split: a query-major kernel (the forward's walk) computes dQ in registers
// and writes it once; it pays when many query heads share a selection relative to the block size
// (choose_backward_plan).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ssa::kernels {

struct SparseAttentionShape {
  int64_t batch = 0;
  int64_t length = 0;           // T
  int64_t q_heads = 0;          // Hq
  int64_t kv_heads = 0;         // Hkv
  int64_t selection_heads = 0;  // H_sel: Hkv (`group`) or Hq (`head`); divides Hq, multiple of Hkv
  int64_t head_dim = 0;         // 64 or 128
  int64_t block_size = 0;       // 16, 32, 64 or 128
  int64_t slots = 0;            // K: selection entries per row, at most 64
};

enum class ForwardPlan { kAuto, kQueryMajor, kKeyMajor };
enum class BackwardPlan { kAuto, kFused, kSplit };

// Throws std::invalid_argument naming the first unsupported property, if any.
void check_sparse_attention_shape(const SparseAttentionShape& shape);

// The plans kAuto resolves to for this shape.
ForwardPlan choose_forward_plan(const SparseAttentionShape& shape);
BackwardPlan choose_backward_plan(const SparseAttentionShape& shape);

// Device workspace of the forward in bytes (0 when the plan resolves to query-major).
size_t sparse_attention_forward_workspace_bytes(const SparseAttentionShape& shape,
                                                ForwardPlan plan = ForwardPlan::kAuto);

// q [B, T, Hq, D], k and v [B, T, Hkv, D] bf16; selection int32 [B, T, H_sel, K] as produced by
// block_select (slot 0 the current block, valid entries first, then -1). Writes out [B, T, Hq, D]
// bf16 and lse [B, T, Hq] float32 (natural log-sum-exp of the scaled scores, for the backward).
// `workspace`: sparse_attention_forward_workspace_bytes(shape, plan) bytes, 256-byte aligned.
// `document_start` (int32 [B, T], the first token of each token's document in its row, or nullptr):
// query t sees key u only when document_start[t] <= u <= t.
void sparse_attention_forward(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                              const int32_t* selection, __nv_bfloat16* out, float* lse, void* workspace,
                              const SparseAttentionShape& shape, cudaStream_t stream,
                              ForwardPlan plan = ForwardPlan::kAuto, const int32_t* document_start = nullptr);

// Device workspace of the backward (float32 gradient accumulators, the inverted selection, scan
// scratch), in bytes.
size_t sparse_attention_backward_workspace_bytes(const SparseAttentionShape& shape,
                                                 BackwardPlan plan = BackwardPlan::kAuto);

// Gradients of sparse_attention_forward: grad_out [B, T, Hq, D] bf16 in; dq [B, T, Hq, D], dk and
// dv [B, T, Hkv, D] bf16 out. `out` and `lse` are the forward's results. `workspace` holds
// sparse_attention_backward_workspace_bytes(shape, plan) bytes, 256-byte aligned. `document_start`
// as given to the forward.
void sparse_attention_backward(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                               const __nv_bfloat16* out, const __nv_bfloat16* grad_out, const float* lse,
                               const int32_t* selection, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                               void* workspace, const SparseAttentionShape& shape, cudaStream_t stream,
                               BackwardPlan plan = BackwardPlan::kAuto, const int32_t* document_start = nullptr);

}  // namespace ssa::kernels
