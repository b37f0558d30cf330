// Block-sparse attention, forward and backward. See sparse_attention.h for the two designs.
#include "sparse_attention.h"

#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda_check.h"
#include "tensor_core.cuh"

namespace ssa::kernels {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kKeyChunk = 16;  // keys per MMA step of the forward
constexpr int kTileRows = 64;  // gathered rows per MMA tile of the key-major kernels (4 warps x 16)

struct Dims {
  int64_t T;
  int Hq, Hkv, Hsel, D, Bs, K;
  int R;   // query heads per selection head (rows per selection)
  int G;   // query heads per KV head
  int SH;  // selection heads per KV head
  int tile_entries, tile_heads;  // kTileRows / R and kTileRows % R, for stepping over gathered rows
  int64_t num_blocks;
  float scale, scale_log2;
  const int32_t* document_start;  // [B, T] first token of each token's document, or nullptr
};

Dims make_dims(const SparseAttentionShape& s) {
  Dims d{};
  d.T = s.length;
  d.Hq = static_cast<int>(s.q_heads);
  d.Hkv = static_cast<int>(s.kv_heads);
  d.Hsel = static_cast<int>(s.selection_heads);
  d.D = static_cast<int>(s.head_dim);
  d.Bs = static_cast<int>(s.block_size);
  d.K = static_cast<int>(s.slots);
  d.R = d.Hq / d.Hsel;
  d.G = d.Hq / d.Hkv;
  d.SH = d.Hsel / d.Hkv;
  d.tile_entries = kTileRows / d.R;
  d.tile_heads = kTileRows % d.R;
  d.num_blocks = (s.length + s.block_size - 1) / s.block_size;
  d.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.head_dim)));
  d.scale_log2 = d.scale * kLog2e;
  return d;
}

// ---------------------------------------------------------------------------------------------
// Query-major walk, shared by the forward and the backward's dQ. One warp per item (b, selection
// head hs, token t); its R <= 16 query heads are the columns (NT tiles of 8) of S^T = K_chunk Q^T,
// so every K/V chunk in shared memory serves all of them. Chunks of 16 keys stream through an
// NS-stage cp.async ring private to the warp. The kWarps warps of a CTA take consecutive tokens of
// one selection head, which share at least their current block (and more blocks the more their
// selections agree): the chunks are copied through L1, so that those loads can hit there instead
// of L2, which bounds these kernels. With D 64, eight warps per CTA and three stages (two CTAs per SM)
// ran the forward 13-20% faster on an H100 than four warps and four stages copied past L1 (32 / 8 heads,
// 16 x 16, 8k and 32k tokens); D 128 keeps four warps, whose three stages take 104 KB.

template <int D, int NS>
struct QueryMajorWalk {
  static constexpr int kWarps = D == 64 ? 8 : 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int STRIDE = D + 8;
  static constexpr int STAGE = 2 * kKeyChunk * STRIDE;  // K then V
  static constexpr size_t kCtaSmemBytes = sizeof(__nv_bfloat16) * kWarps * NS * STAGE;
  // A chunk's K (or V) is kKeyChunk rows of D / 8 16-byte pieces; a lane copies one piece of
  // every kCopyRows-th row.
  static constexpr int kCopyRows = 32 / (D / 8);

  const Dims& p;
  const int lane;
  int64_t b;
  int t;          // positions and key offsets within a sequence are 32-bit (check_sparse_attention_shape)
  int first_key;  // keys before the first token of t's document are masked; 0 without masking
  int hs, hq0, hk;
  int32_t sel_lo, sel_hi;
  int chunk_shift, chunks;  // log2 of chunks per block (block sizes are powers of two), chunks in all
  const __nv_bfloat16* k_head;  // + key * key_stride
  const __nv_bfloat16* v_head;
  int key_stride;
  int copy_offset;              // of this lane's piece in a chunk's first rows: row * key_stride + col
  __nv_bfloat16* copy_target;   // the same piece in the ring's first stage
  __nv_bfloat16* ring;

  // The item of the calling warp (kWarps per CTA); past the last item when the grid's tail is idle.
  __device__ static int64_t warp_item() { return static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; }

  // `cta_smem`: the CTA's dynamic shared memory (kCtaSmemBytes), a ring per warp.
  __device__ QueryMajorWalk(const Dims& dims, int64_t item, const __nv_bfloat16* k, const __nv_bfloat16* v,
                            const int32_t* selection, unsigned char* cta_smem)
      : p(dims),
        lane(threadIdx.x % 32),
        ring(reinterpret_cast<__nv_bfloat16*>(cta_smem) + (threadIdx.x / 32) * NS * STAGE) {
    t = static_cast<int>(item % p.T);
    hs = static_cast<int>((item / p.T) % p.Hsel);
    b = item / (p.T * p.Hsel);
    hq0 = hs * p.R;
    hk = hq0 / p.G;
    first_key = p.document_start != nullptr ? p.document_start[b * p.T + t] : 0;
    const int32_t* sel = selection + ((b * p.T + t) * p.Hsel + hs) * p.K;
    sel_lo = lane < p.K ? sel[lane] : -1;
    sel_hi = lane + 32 < p.K ? sel[lane + 32] : -1;
    const int valid_slots =
        __popc(__ballot_sync(kFullMask, sel_lo >= 0)) + __popc(__ballot_sync(kFullMask, sel_hi >= 0));
    chunk_shift = __ffs(p.Bs / kKeyChunk) - 1;
    chunks = valid_slots << chunk_shift;
    k_head = k + (b * p.T * p.Hkv + hk) * D;
    v_head = v + (b * p.T * p.Hkv + hk) * D;
    key_stride = p.Hkv * D;
    const int copy_row = lane / (D / 8), copy_col = (lane % (D / 8)) * 8;
    copy_offset = copy_row * key_stride + copy_col;
    copy_target = ring + copy_row * STRIDE + copy_col;
  }

  // Global row of query head `row` (< R) of this item in a [B, T, Hq, *] tensor.
  __device__ int64_t head_row(int row) const { return (b * p.T + t) * p.Hq + hq0 + row; }

  // First key of chunk i, or -1 when the chunk is entirely in the future or before the document
  // (or the slot invalid). Chunks are taken in order, so the per-chunk cost is a shuffle and a
  // few 32-bit operations: Nsight Compute found the earlier 64-bit form, with an integer division
  // per call, to be most of the walk's instructions.
  __device__ int chunk_key(int i) const {
    const int slot = i >> chunk_shift;
    const int32_t j = __shfl_sync(kFullMask, slot < 32 ? sel_lo : sel_hi, slot & 31);
    const bool in_range = static_cast<uint32_t>(j) < static_cast<uint32_t>(p.num_blocks);
    const int key0 = static_cast<int>(static_cast<uint32_t>(j) * static_cast<uint32_t>(p.Bs)) +
                     ((i & ((1 << chunk_shift) - 1)) * kKeyChunk);
    return (in_range && key0 <= t && key0 + kKeyChunk > first_key) ? key0 : -1;
  }

  // Starts the copy of chunk i into `stage` (nothing past the last chunk) and commits a group;
  // returns the chunk's first key as chunk_key does (-1 past the last chunk).
  __device__ int issue(int i, int stage) {
    int key0 = -1;
    if (i < chunks) {
      key0 = chunk_key(i);
      if (key0 >= 0) {
        const int rows_left = static_cast<int>(p.T) - key0;  // the last block may end past the sequence
        const int base = key0 * key_stride + copy_offset;
        __nv_bfloat16* target = copy_target + stage * STAGE;
#pragma unroll
        for (int pass = 0; pass < kKeyChunk / kCopyRows; ++pass) {
          const int row = pass * kCopyRows;
          const bool ok = lane / (D / 8) + row < rows_left;
          const int offset = ok ? base + row * key_stride : 0;
          cp_async_16_l1(target + row * STRIDE, k_head + offset, ok);
          cp_async_16_l1(target + (kKeyChunk + row) * STRIDE, v_head + offset, ok);
        }
      }
    }
    cp_async_commit();
    return key0;
  }

  // Runs body(k_tile, v_tile, key0) for every chunk that holds a key visible to t (key0 its first
  // key), with the chunk's K and V in shared memory while it runs. The first keys of the NS - 1
  // chunks in flight stay in registers, so each chunk's is derived once.
  template <class Body>
  __device__ void for_each_chunk(Body&& body) {
    int pending[NS - 1];
#pragma unroll
    for (int i = 0; i < NS - 1; ++i) pending[i] = issue(i, i);
    int stage = 0;
    for (int i = 0; i < chunks; ++i) {
      const int key0 = pending[0];
#pragma unroll
      for (int x = 0; x + 1 < NS - 1; ++x) pending[x] = pending[x + 1];
      pending[NS - 2] = issue(i + NS - 1, stage == 0 ? NS - 1 : stage - 1);
      cp_async_wait<NS - 1>();
      __syncwarp();
      if (key0 >= 0) {
        const __nv_bfloat16* k_tile = ring + stage * STAGE;
        body(k_tile, k_tile + kKeyChunk * STRIDE, key0);
      }
      __syncwarp();
      stage = stage == NS - 1 ? 0 : stage + 1;
    }
    cp_async_wait<0>();
  }

  // Whether `key` is visible to t: in its past and not before the start of its document.
  __device__ bool visible(int key) const { return key <= t && key >= first_key; }
};

// The R rows of an item ([R, D] at `rows`, R rows of D apart) as the B operand of X_chunk Rows^T:
// b0 = (d 2c.., row g), b1 = (d 2c+8.., row g) of each n-tile; rows >= R are zero.
template <int D, int NT>
__device__ __forceinline__ void load_rows_as_b(uint32_t (&frag)[NT][D / 16][2], const __nv_bfloat16* rows, int R,
                                               int g, int c) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int row = nt * 8 + g;
    const __nv_bfloat16* src = rows + static_cast<int64_t>(row) * D;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      frag[nt][ks][0] = row < R ? *reinterpret_cast<const uint32_t*>(src + ks * 16 + 2 * c) : 0u;
      frag[nt][ks][1] = row < R ? *reinterpret_cast<const uint32_t*>(src + ks * 16 + 8 + 2 * c) : 0u;
    }
  }
}

// s[nt] = X_chunk Rows^T for a 16-key tile X in shared memory: (key g, rows 2c, 2c+1) and
// (key g + 8, rows 2c, 2c+1) of n-tile nt.
template <int D, int NT>
__device__ __forceinline__ void chunk_times_rows(float (&s)[NT][4], const __nv_bfloat16* tile,
                                                 const uint32_t (&rows)[NT][D / 16][2], int lane) {
  constexpr int STRIDE = D + 8;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
  for (int ks = 0; ks < D / 16; ++ks) {
    uint32_t a[4];
    ldmatrix_x4(a, tile + ((lane % 8) + ((lane / 8) % 2) * 8) * STRIDE + ks * 16 + (lane / 16) * 8);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) mma_bf16(s[nt], a, rows[nt][ks][0], rows[nt][ks][1]);
  }
}

// acc^T (D x rows) += X_chunk^T W^T, with W^T (keys x rows) already in B-operand form (pb, from
// movmatrix_trans of the chunk's values); acc[nt][mt]: (d mt*16 + g, rows 2c, 2c+1) and d + 8.
template <int D, int NT>
__device__ __forceinline__ void accumulate_chunk_transposed(float (&acc)[NT][D / 16][4], const __nv_bfloat16* tile,
                                                            const uint32_t (&pb)[NT][2], int lane) {
  constexpr int STRIDE = D + 8;
#pragma unroll
  for (int mt = 0; mt < D / 16; ++mt) {
    uint32_t a[4];  // X^T tile: d rows mt*16.., keys 0..15
    ldmatrix_x4_trans(a, tile + ((lane % 8) + (lane / 16) * 8) * STRIDE + mt * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) mma_bf16(acc[nt][mt], a, pb[nt][0], pb[nt][1]);
  }
}

// Writes acc^T times a per-row factor as bf16 rows (R rows of D apart at `rows`).
template <int D, int NT>
__device__ __forceinline__ void store_rows(const float (&acc)[NT][D / 16][4], const float (&factor)[NT][2],
                                           __nv_bfloat16* rows, int R, int g, int c) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int row0 = nt * 8 + 2 * c, row1 = row0 + 1;
    __nv_bfloat16* out0 = rows + static_cast<int64_t>(row0) * D;
    __nv_bfloat16* out1 = out0 + D;
#pragma unroll
    for (int mt = 0; mt < D / 16; ++mt) {
      const int d = mt * 16 + g;
      if (row0 < R) {
        out0[d] = __float2bfloat16_rn(acc[nt][mt][0] * factor[nt][0]);
        out0[d + 8] = __float2bfloat16_rn(acc[nt][mt][2] * factor[nt][0]);
      }
      if (row1 < R) {
        out1[d] = __float2bfloat16_rn(acc[nt][mt][1] * factor[nt][1]);
        out1[d + 8] = __float2bfloat16_rn(acc[nt][mt][3] * factor[nt][1]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Forward, query-major: the online softmax of each column in registers.

template <int D, int NT, int NS>
__global__ void __launch_bounds__(QueryMajorWalk<D, NS>::kThreads)
    sparse_forward_kernel(const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                          const __nv_bfloat16* __restrict__ v, const int32_t* __restrict__ selection,
                          __nv_bfloat16* __restrict__ out, float* __restrict__ lse, Dims p, int64_t items) {
  using Walk = QueryMajorWalk<D, NS>;
  constexpr int MT = D / 16;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int64_t item = Walk::warp_item();
  if (item >= items) return;
  Walk walk(p, item, k, v, selection, smem_raw);
  const int R = p.R, lane = walk.lane, g = lane / 4, c = lane % 4;

  uint32_t qb[NT][D / 16][2];
  load_rows_as_b<D, NT>(qb, q + walk.head_row(0) * D, R, g, c);

  float o[NT][MT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) o[nt][mt][0] = o[nt][mt][1] = o[nt][mt][2] = o[nt][mt][3] = 0.f;
  float row_max[NT][2], row_sum[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) row_max[nt][0] = row_max[nt][1] = -INFINITY, row_sum[nt][0] = row_sum[nt][1] = 0.f;

  walk.for_each_chunk([&](const __nv_bfloat16* k_tile, const __nv_bfloat16* v_tile, int key0) {
    float s[NT][4];
    chunk_times_rows<D, NT>(s, k_tile, qb, lane);
    const bool ok_lo = walk.visible(key0 + g), ok_hi = walk.visible(key0 + g + 8);
    uint32_t pb[NT][2];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      float x[4];
      x[0] = ok_lo ? s[nt][0] * p.scale_log2 : -INFINITY;
      x[1] = ok_lo ? s[nt][1] * p.scale_log2 : -INFINITY;
      x[2] = ok_hi ? s[nt][2] * p.scale_log2 : -INFINITY;
      x[3] = ok_hi ? s[nt][3] * p.scale_log2 : -INFINITY;
      float m0 = fmaxf(x[0], x[2]), m1 = fmaxf(x[1], x[3]);
#pragma unroll
      for (int offset = 4; offset < 32; offset *= 2) {
        m0 = fmaxf(m0, __shfl_xor_sync(kFullMask, m0, offset));
        m1 = fmaxf(m1, __shfl_xor_sync(kFullMask, m1, offset));
      }
      // Every chunk taken holds a visible key (key0 <= t, key0 + 15 >= first_key, first_key <= t),
      // so the new maxima are finite.
      const float new0 = fmaxf(row_max[nt][0], m0), new1 = fmaxf(row_max[nt][1], m1);
      const float alpha0 = fast_exp2(row_max[nt][0] - new0), alpha1 = fast_exp2(row_max[nt][1] - new1);
      row_max[nt][0] = new0;
      row_max[nt][1] = new1;
      const float p0 = fast_exp2(x[0] - new0), p1 = fast_exp2(x[1] - new1);
      const float p2 = fast_exp2(x[2] - new0), p3 = fast_exp2(x[3] - new1);
      row_sum[nt][0] = row_sum[nt][0] * alpha0 + p0 + p2;
      row_sum[nt][1] = row_sum[nt][1] * alpha1 + p1 + p3;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        o[nt][mt][0] *= alpha0;
        o[nt][mt][1] *= alpha1;
        o[nt][mt][2] *= alpha0;
        o[nt][mt][3] *= alpha1;
      }
      // P^T (keys x rows) to the B operand (keys as k, rows as n) by 8x8 transposes.
      pb[nt][0] = movmatrix_trans(pack_bf16(p0, p1));
      pb[nt][1] = movmatrix_trans(pack_bf16(p2, p3));
    }
    accumulate_chunk_transposed<D, NT>(o, v_tile, pb, lane);
  });

  float inv[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    float l0 = row_sum[nt][0], l1 = row_sum[nt][1];
#pragma unroll
    for (int offset = 4; offset < 32; offset *= 2) {
      l0 += __shfl_xor_sync(kFullMask, l0, offset);
      l1 += __shfl_xor_sync(kFullMask, l1, offset);
    }
    inv[nt][0] = 1.f / l0;
    inv[nt][1] = 1.f / l1;
    const int row0 = nt * 8 + 2 * c, row1 = row0 + 1;
    if (g == 0) {
      float* lse_row = lse + walk.head_row(0);
      if (row0 < R) lse_row[row0] = (row_max[nt][0] + __log2f(l0)) * kLn2;
      if (row1 < R) lse_row[row1] = (row_max[nt][1] + __log2f(l1)) * kLn2;
    }
  }
  store_rows<D, NT>(o, inv, out + walk.head_row(0) * D, R, g, c);
}

// Grid, block and dynamic shared memory of a query-major kernel over `items` items (one per warp),
// with the kernel allowed that much shared memory.
struct QueryMajorLaunch {
  unsigned grid, threads;
  size_t smem;
};
template <int D, int NS, class Kernel>
QueryMajorLaunch prepare_query_major(Kernel kernel, int64_t items) {
  using Walk = QueryMajorWalk<D, NS>;
  const size_t smem = Walk::kCtaSmemBytes;
  SSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  // Two CTAs of eight warps need nearly all of the SM's shared memory; the default carveout gives less.
  SSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                      cudaSharedmemCarveoutMaxShared));
  return {static_cast<unsigned>((items + Walk::kWarps - 1) / Walk::kWarps), static_cast<unsigned>(Walk::kThreads),
          smem};
}

template <int D, int NT, int NS>
void launch_forward(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, const int32_t* selection,
                    __nv_bfloat16* out, float* lse, const Dims& p, int64_t batch, cudaStream_t stream) {
  const int64_t items = batch * p.Hsel * p.T;
  const auto launch = prepare_query_major<D, NS>(sparse_forward_kernel<D, NT, NS>, items);
  sparse_forward_kernel<D, NT, NS><<<launch.grid, launch.threads, launch.smem, stream>>>(q, k, v, selection, out, lse,
                                                                                       p, items);
  SSA_CUDA_CHECK_LAUNCH("sparse_forward_kernel");
}

// Calls launch(D, NT, NS) with the std::integral_constant template arguments of the query-major
// kernels' instance for this shape: n-tiles of 8 columns for R query heads, the ring's stages.
template <class Launch>
void with_query_major_instance(const Dims& p, Launch&& launch) {
  using std::integral_constant;
  const bool two_tiles = p.R > 8;
  if (p.D == 64) {
    if (two_tiles) launch(integral_constant<int, 64>{}, integral_constant<int, 2>{}, integral_constant<int, 3>{});
    else launch(integral_constant<int, 64>{}, integral_constant<int, 1>{}, integral_constant<int, 3>{});
  } else {
    if (two_tiles) launch(integral_constant<int, 128>{}, integral_constant<int, 2>{}, integral_constant<int, 3>{});
    else launch(integral_constant<int, 128>{}, integral_constant<int, 1>{}, integral_constant<int, 3>{});
  }
}

// ---------------------------------------------------------------------------------------------
// Backward's dQ, query-major (the split plan): the forward's walk with dO^T beside Q^T. Per chunk
// S^T = K Q^T and dP^T = V dO^T, then dS = P (dP - delta) with P from the saved log-sum-exp, and
// dQ^T += K^T dS^T in registers; dQ is written once, in bf16, with no reduction.

template <int D, int NT, int NS>
__global__ void __launch_bounds__(QueryMajorWalk<D, NS>::kThreads) sparse_backward_dq_kernel(
    const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
    const __nv_bfloat16* __restrict__ grad_out, const float* __restrict__ lse, const float* __restrict__ delta,
    const int32_t* __restrict__ selection, __nv_bfloat16* __restrict__ dq, Dims p, int64_t items) {
  using Walk = QueryMajorWalk<D, NS>;
  constexpr int MT = D / 16;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int64_t item = Walk::warp_item();
  if (item >= items) return;
  Walk walk(p, item, k, v, selection, smem_raw);
  const int R = p.R, lane = walk.lane, g = lane / 4, c = lane % 4;
  const int64_t row0_global = walk.head_row(0);

  uint32_t qb[NT][D / 16][2], dob[NT][D / 16][2];
  load_rows_as_b<D, NT>(qb, q + row0_global * D, R, g, c);
  load_rows_as_b<D, NT>(dob, grad_out + row0_global * D, R, g, c);
  // Columns 2c, 2c + 1 of each n-tile: log2-domain lse (+inf for padding columns, so P = 0) and delta.
  float lse2[NT][2], dlt[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int x = 0; x < 2; ++x) {
      const int row = nt * 8 + 2 * c + x;
      lse2[nt][x] = row < R ? lse[row0_global + row] * kLog2e : INFINITY;
      dlt[nt][x] = row < R ? delta[row0_global + row] : 0.f;
    }

  float acc[NT][MT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) acc[nt][mt][0] = acc[nt][mt][1] = acc[nt][mt][2] = acc[nt][mt][3] = 0.f;

  walk.for_each_chunk([&](const __nv_bfloat16* k_tile, const __nv_bfloat16* v_tile, int key0) {
    float s[NT][4], dp[NT][4];
    chunk_times_rows<D, NT>(s, k_tile, qb, lane);
    chunk_times_rows<D, NT>(dp, v_tile, dob, lane);
    const bool ok[2] = {walk.visible(key0 + g), walk.visible(key0 + g + 8)};
    uint32_t dsb[NT][2];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      float ds[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float prob = ok[e / 2] ? fast_exp2(s[nt][e] * p.scale_log2 - lse2[nt][e & 1]) : 0.f;
        ds[e] = prob * (dp[nt][e] - dlt[nt][e & 1]);
      }
      dsb[nt][0] = movmatrix_trans(pack_bf16(ds[0], ds[1]));
      dsb[nt][1] = movmatrix_trans(pack_bf16(ds[2], ds[3]));
    }
    accumulate_chunk_transposed<D, NT>(acc, k_tile, dsb, lane);
  });

  float scale[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) scale[nt][0] = scale[nt][1] = p.scale;
  store_rows<D, NT>(acc, scale, dq + row0_global * D, R, g, c);
}

template <int D, int NT, int NS>
void launch_backward_dq(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                        const __nv_bfloat16* grad_out, const float* lse, const float* delta, const int32_t* selection,
                        __nv_bfloat16* dq, const Dims& p, int64_t batch, cudaStream_t stream) {
  const int64_t items = batch * p.Hsel * p.T;
  const auto launch = prepare_query_major<D, NS>(sparse_backward_dq_kernel<D, NT, NS>, items);
  sparse_backward_dq_kernel<D, NT, NS><<<launch.grid, launch.threads, launch.smem, stream>>>(
      q, k, v, grad_out, lse, delta, selection, dq, p, items);
  SSA_CUDA_CHECK_LAUNCH("sparse_backward_dq_kernel");
}

// ---------------------------------------------------------------------------------------------
// Backward. Segments (b, KV head, query chunk, key block) list the selection entries
// (t * SH + selection head within the KV head) that chose the block; a row is (entry, one of its
// R query heads). Query chunks of kQueryChunkRows / G tokens keep the rows a wave of CTAs touches
// (q, dO, the dQ accumulator) resident in L2.

constexpr int64_t kQueryChunkRows = 32768;
constexpr int kTilesPerCta = 8;     // row tiles per CTA

struct Segments {
  int64_t query_chunk;  // tokens per query chunk
  int64_t chunks;       // query chunks per sequence
  int64_t count;        // number of segments
};

Segments make_segments(const SparseAttentionShape& s) {
  const int64_t G = s.q_heads / s.kv_heads;
  Segments seg{};
  seg.query_chunk = std::max<int64_t>(1, kQueryChunkRows / G);
  seg.chunks = (s.length + seg.query_chunk - 1) / seg.query_chunk;
  const int64_t blocks = (s.length + s.block_size - 1) / s.block_size;
  seg.count = s.batch * s.kv_heads * seg.chunks * blocks;
  return seg;
}

__device__ __forceinline__ int64_t segment_of(int64_t b, int hk, int64_t t, int64_t j, const Dims& p,
                                              int64_t query_chunk, int64_t chunks) {
  return ((b * p.Hkv + hk) * chunks + t / query_chunk) * p.num_blocks + j;
}

// The selection's inversion in two levels. A CTA takes the selection rows of kInversionRows / SH
// consecutive tokens of one (b, KV head, query chunk), whose entries all fall in the segments of
// that chunk: it counts them per key block in shared memory and adds each non-empty count to the
// global one with a single atomic (count), or reserves each segment's range with a single atomic
// and places its entries by shared-memory atomics (fill). A per-entry global atomic was most of
// the inversion's time: thousands of entries of a chunk land on the same few hundred counters.
// Key blocks are handled in windows of kInversionWindow counters (one window up to 128k tokens at
// block size 16). Within a segment the order of entries is arbitrary, as before.
constexpr int kInversionThreads = 256;
constexpr int kInversionRows = 1024;     // selection rows per CTA
constexpr int kInversionWindow = 8192;   // shared-memory counters (32 KB)

struct InversionTiles {
  int64_t tokens;      // tokens per CTA
  int64_t per_chunk;   // CTAs per query chunk
};

template <bool kFill>
__global__ void __launch_bounds__(kInversionThreads)
    index_kernel(const int32_t* __restrict__ selection, int32_t* __restrict__ counts,
                 const int32_t* __restrict__ offsets, int32_t* __restrict__ entries, Dims p, int64_t query_chunk,
                 int64_t chunks, InversionTiles tiles) {
  extern __shared__ int32_t local[];
  // blockIdx.x = ((b * Hkv + hk) * chunks + chunk) * per_chunk + tile
  const int64_t tile = blockIdx.x % tiles.per_chunk;
  const int64_t bhc = blockIdx.x / tiles.per_chunk;  // (b * Hkv + hk) * chunks + chunk
  const int64_t chunk = bhc % chunks;
  const int64_t bh = bhc / chunks;
  const int hk = static_cast<int>(bh % p.Hkv);
  const int64_t b = bh / p.Hkv;
  const int64_t t_begin = chunk * query_chunk + tile * tiles.tokens;
  const int64_t t_end = std::min(std::min(t_begin + tiles.tokens, (chunk + 1) * query_chunk), p.T);
  if (t_begin >= t_end) return;
  const int rows = static_cast<int>(t_end - t_begin) * p.SH;
  const int64_t first_segment = segment_of(b, hk, t_begin, 0, p, query_chunk, chunks);
  const bool vector_slots = p.K % 4 == 0 && reinterpret_cast<uintptr_t>(selection) % 16 == 0;

  // Calls visit(j - w0, entry) for every entry of the CTA's rows whose block j lies in [w0, w0 + n).
  auto for_each_entry = [&](int64_t w0, int n, auto&& visit) {
    for (int r = threadIdx.x; r < rows; r += kInversionThreads) {
      const int64_t t = t_begin + r / p.SH;
      const int s = r % p.SH;
      const int32_t entry = static_cast<int32_t>(t) * p.SH + s;
      const int32_t* slots = selection + ((b * p.T + t) * p.Hsel + static_cast<int64_t>(hk) * p.SH + s) * p.K;
      auto take = [&](int32_t j) {
        if (j >= w0 && j < w0 + n) visit(static_cast<int>(j - w0), entry);
      };
      if (vector_slots) {
        for (int k = 0; k < p.K; k += 4) {
          const int4 four = *reinterpret_cast<const int4*>(slots + k);
          take(four.x);
          take(four.y);
          take(four.z);
          take(four.w);
        }
      } else {
        for (int k = 0; k < p.K; ++k) take(slots[k]);
      }
    }
  };

  for (int64_t w0 = 0; w0 < p.num_blocks; w0 += kInversionWindow) {
    const int n = static_cast<int>(std::min<int64_t>(kInversionWindow, p.num_blocks - w0));
    for (int i = threadIdx.x; i < n; i += kInversionThreads) local[i] = 0;
    __syncthreads();
    for_each_entry(w0, n, [&](int i, int32_t) { atomicAdd(&local[i], 1); });
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += kInversionThreads) {
      const int32_t here = local[i];
      if (here == 0) continue;
      const int64_t segment = first_segment + w0 + i;
      const int32_t before = atomicAdd(&counts[segment], here);
      // fill: the CTA's first position in the segment, advanced below by each entry it places.
      if (kFill) local[i] = offsets[segment] + before;
    }
    if (kFill) {
      __syncthreads();
      for_each_entry(w0, n, [&](int i, int32_t entry) { entries[atomicAdd(&local[i], 1)] = entry; });
    }
    __syncthreads();
  }
}

__global__ void delta_kernel(const __nv_bfloat16* __restrict__ out, const __nv_bfloat16* __restrict__ grad_out,
                             float* __restrict__ delta, int64_t rows, int D) {
  // 8 lanes per row, 16 bytes each per step.
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 8;
  const int part = threadIdx.x % 8;
  float acc = 0.f;
  if (row < rows) {
    for (int d = part * 8; d < D; d += 64) {
      const uint4 a = *reinterpret_cast<const uint4*>(out + row * D + d);
      const uint4 bvec = *reinterpret_cast<const uint4*>(grad_out + row * D + d);
      const __nv_bfloat162* x = reinterpret_cast<const __nv_bfloat162*>(&a);
      const __nv_bfloat162* y = reinterpret_cast<const __nv_bfloat162*>(&bvec);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 xf = __bfloat1622float2(x[e]), yf = __bfloat1622float2(y[e]);
        acc += xf.x * yf.x + xf.y * yf.y;
      }
    }
  }
  acc += __shfl_xor_sync(kFullMask, acc, 1);
  acc += __shfl_xor_sync(kFullMask, acc, 2);
  acc += __shfl_xor_sync(kFullMask, acc, 4);
  if (row < rows && part == 0) delta[row] = acc;
}

__global__ void to_bf16_kernel(const float* __restrict__ src, __nv_bfloat16* __restrict__ dst, int64_t n4) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float4 x = reinterpret_cast<const float4*>(src)[i];
    uint2 packed;
    packed.x = pack_bf16(x.x, x.y);
    packed.y = pack_bf16(x.z, x.w);
    reinterpret_cast<uint2*>(dst)[i] = packed;
  }
}

// The segment holding selection entry `entry`: the last s with offsets[s] <= entry, searched
// from `from` (offsets[from] <= entry) by doubling steps, then bisection. Returns `segments` when
// the entry lies past the end. Nearby answers cost a load or two.
__device__ __forceinline__ int64_t find_segment(const int32_t* __restrict__ offsets, int64_t segments, int64_t from,
                                                int64_t entry) {
  if (entry >= offsets[segments]) return segments;
  int64_t lo = from, step = 1, hi = from + 1;
  while (hi < segments && offsets[hi] <= entry) {
    lo = hi;
    step *= 2;
    hi = lo + step;
  }
  hi = std::min(hi, segments);
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (offsets[mid] <= entry) lo = mid;
    else hi = mid;
  }
  return lo;
}

// First segment of every backward CTA, searched by one thread each so the latencies overlap.
__global__ void cta_segments_kernel(const int32_t* __restrict__ offsets, int64_t segments, int64_t rows_per_cta,
                                    int R, int64_t ctas, int64_t* __restrict__ first) {
  const int64_t cta = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (cta < ctas) first[cta] = find_segment(offsets, segments, 0, cta * rows_per_cta / R);
}

// A gathered row: its global index (b * T + t) * Hq + hq, or -1 for padding, and its token.
struct Located {
  int64_t row;
  int t;
};

// The gathered rows of a segment piece for the key-major kernels: a pair of threads per row, row
// threadIdx.x / 2 of each tile of kTileRows, query head r % R of selection entry r / R. The cursor
// moves a tile at a time by addition: Nsight Compute found integer divisions and 64-bit index
// arithmetic to be most of the query-major walk's instructions, and locating a row took three
// divisions here.
struct GatheredRows {
  int64_t r, entry;
  int head;

  __device__ GatheredRows(int64_t first_row, int R) : r(first_row + threadIdx.x / 2) {
    entry = r / R;
    head = static_cast<int>(r - entry * R);
  }

  __device__ void advance(const Dims& p) {
    r += kTileRows;
    entry += p.tile_entries;
    head += p.tile_heads;
    if (head >= p.R) {
      head -= p.R;
      ++entry;
    }
  }

  // This thread's row of the tile, row -1 at or past `end`. With `group` selection (SH 1) an entry
  // is its token.
  __device__ Located locate(const int32_t* entries, int64_t end, const Dims& p, int64_t b, int hk) const {
    Located l{-1, 0};
    if (r < end) {
      const int32_t e = entries[entry];
      const int head_in_kv = p.SH == 1 ? head : (e % p.SH) * p.R + head;
      l.t = p.SH == 1 ? e : e / p.SH;
      l.row = (b * p.T + l.t) * p.Hq + hk * p.G + head_in_kv;
    }
    return l;
  }
};

template <int D, int KT>
struct BackwardSmem {
  static constexpr int STRIDE = D + 8;
  static constexpr int PSTRIDE = KT + 8;
  __nv_bfloat16 q[2][kTileRows][STRIDE];
  __nv_bfloat16 dout[2][kTileRows][STRIDE];
  __nv_bfloat16 k[KT][STRIDE];
  __nv_bfloat16 v[KT][STRIDE];
  __nv_bfloat16 p[kTileRows][PSTRIDE];
  __nv_bfloat16 ds[kTileRows][PSTRIDE];
  int64_t row[2][kTileRows];
  int t[2][kTileRows];
  float lse[2][kTileRows];
  float delta[2][kTileRows];
};

struct BackwardArgs {
  const __nv_bfloat16* q;
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  const __nv_bfloat16* grad_out;
  const float* lse;
  const float* delta;
  const int32_t* offsets;  // [segments + 1], entry offsets
  const int32_t* entries;
  const int64_t* cta_segment;  // first segment of each CTA
  float* dq;
  float* dk;
  float* dv;
  int64_t segments;
  int64_t query_chunk;
  int64_t chunks;
  int64_t rows_total;  // upper bound of rows; CTAs past the real end find nothing
};

// kDq false (the split plan): dK and dV only; the query-major dQ kernel computes dQ.
template <int D, int KT, bool kDq>
__global__ void __launch_bounds__(128) sparse_backward_kernel(BackwardArgs a, Dims p) {
  using Smem = BackwardSmem<D, KT>;
  constexpr int KS = D / 16;        // k-steps over the head dimension
  constexpr int NKT = KT / 8;       // n-tiles over keys
  constexpr int MKT = KT / 16;      // m-tiles over keys (dK, dV)
  constexpr int NDW = D / 32;       // n-tiles over this warp's quarter of the head dimension
  constexpr int ND = D / 8;         // n-tiles over the head dimension (dQ)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem& sm = *reinterpret_cast<Smem*>(smem_raw);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  const int R = p.R;

  const int64_t row_begin = static_cast<int64_t>(blockIdx.x) * kTileRows * kTilesPerCta;
  const int64_t row_end = std::min<int64_t>(row_begin + kTileRows * kTilesPerCta, a.rows_total);
  int64_t row = row_begin;
  int64_t seg = a.cta_segment[blockIdx.x];
  while (row < row_end && seg < a.segments) {
    int64_t seg_first = static_cast<int64_t>(a.offsets[seg]) * R;
    int64_t seg_last = static_cast<int64_t>(a.offsets[seg + 1]) * R;
    if (seg_last <= row) {
      // The rest of the range starts in a later segment (every thread computes the same).
      seg = find_segment(a.offsets, a.segments, seg, row / R);
      continue;
    }
    const int64_t piece_begin = std::max(row, seg_first);
    const int64_t piece_end = std::min(row_end, seg_last);
    const int64_t j = seg % p.num_blocks;
    const int64_t bhq = seg / p.num_blocks / a.chunks;  // b * Hkv + hk
    const int hk = static_cast<int>(bhq % p.Hkv);
    const int64_t b = bhq / p.Hkv;
    const __nv_bfloat16* k_head = a.k + (b * p.T * p.Hkv + hk) * D;
    const __nv_bfloat16* v_head = a.v + (b * p.T * p.Hkv + hk) * D;
    const int key_stride = p.Hkv * D;  // key offsets within a sequence are 32-bit (check_sparse_attention_shape)

    for (int kt = 0; kt * KT < p.Bs; ++kt) {
      const int key_base = static_cast<int>(j) * p.Bs + kt * KT;

      // Row tiles are gathered two steps ahead: the entry of tile n + 2 is loaded into registers
      // while tile n computes, and tile n + 1's rows (and their lse, delta) are already in flight.
      auto issue = [&](const Located& l, int stage) {
        const int i = threadIdx.x / 2, half = threadIdx.x % 2;
        const bool ok = l.row >= 0;
        if (half == 0) {
          sm.row[stage][i] = l.row;
          sm.t[stage][i] = l.t;
          cp_async_4(&sm.lse[stage][i], a.lse + (ok ? l.row : 0), ok);
          cp_async_4(&sm.delta[stage][i], a.delta + (ok ? l.row : 0), ok);
        }
        constexpr int PIECES = D / 8;
#pragma unroll
        for (int x = half; x < PIECES; x += 2) {
          const int64_t offset = ok ? l.row * D + x * 8 : 0;
          cp_async_16(&sm.q[stage][i][x * 8], a.q + offset, ok);
          cp_async_16(&sm.dout[stage][i][x * 8], a.grad_out + offset, ok);
        }
      };

      // Key tile (zero past the end of the sequence) together with the first row tile.
      for (int x = threadIdx.x; x < KT * (D / 8); x += 128) {
        const int rr = x / (D / 8), col = (x % (D / 8)) * 8;
        const int key = key_base + rr;
        const bool ok = key < p.T && rr < p.Bs;
        const int offset = ok ? key * key_stride + col : 0;
        cp_async_16(&sm.k[rr][col], k_head + offset, ok);
        cp_async_16(&sm.v[rr][col], v_head + offset, ok);
      }
      GatheredRows rows(piece_begin, R);
      Located next = rows.locate(a.entries, piece_end, p, b, hk);
      issue(next, 0);
      cp_async_commit();
      rows.advance(p);
      next = rows.locate(a.entries, piece_end, p, b, hk);

      float dk_acc[MKT][NDW][4], dv_acc[MKT][NDW][4];
#pragma unroll
      for (int mt = 0; mt < MKT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NDW; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) dk_acc[mt][nt][e] = dv_acc[mt][nt][e] = 0.f;

      int stage = 0;
      for (int64_t tile_first = piece_begin; tile_first < piece_end; tile_first += kTileRows, stage ^= 1) {
        if (tile_first + kTileRows < piece_end) issue(next, stage ^ 1);
        cp_async_commit();
        if (tile_first + 2 * kTileRows < piece_end) {
          rows.advance(p);
          next = rows.locate(a.entries, piece_end, p, b, hk);
        }
        cp_async_wait<1>();
        __syncthreads();

        const int i0 = warp * 16 + g, i1 = i0 + 8;
        struct {
          int64_t row;
          int t;
          float lse2, delta;
        } const m0{sm.row[stage][i0], sm.t[stage][i0], sm.lse[stage][i0] * kLog2e, sm.delta[stage][i0]},
            m1{sm.row[stage][i1], sm.t[stage][i1], sm.lse[stage][i1] * kLog2e, sm.delta[stage][i1]};
        // First visible key of each row's token (document masking; 0 without).
        const int first0 = p.document_start != nullptr && m0.row >= 0 ? p.document_start[b * p.T + m0.t] : 0;
        const int first1 = p.document_start != nullptr && m1.row >= 0 ? p.document_start[b * p.T + m1.t] : 0;
        // S = Q K^T and dP = dO V^T for this warp's 16 rows.
        float s[NKT][4], dp[NKT][4];
#pragma unroll
        for (int nt = 0; nt < NKT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[nt][e] = dp[nt][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < KS; ++ks) {
          uint32_t aq[4], ado[4];
          const int ar = warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8, ac = ks * 16 + (lane / 16) * 8;
          ldmatrix_x4(aq, &sm.q[stage][ar][ac]);
          ldmatrix_x4(ado, &sm.dout[stage][ar][ac]);
#pragma unroll
          for (int np = 0; np < KT / 16; ++np) {
            uint32_t bk[4], bv[4];
            const int br = np * 16 + (lane % 8) + (lane / 16) * 8, bc = ks * 16 + ((lane / 8) % 2) * 8;
            ldmatrix_x4(bk, &sm.k[br][bc]);
            ldmatrix_x4(bv, &sm.v[br][bc]);
            mma_bf16(s[2 * np], aq, bk[0], bk[1]);
            mma_bf16(s[2 * np + 1], aq, bk[2], bk[3]);
            mma_bf16(dp[2 * np], ado, bv[0], bv[1]);
            mma_bf16(dp[2 * np + 1], ado, bv[2], bv[3]);
          }
        }
        // P and dS (natural-log gradient of the scaled score).
#pragma unroll
        for (int nt = 0; nt < NKT; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const auto& m = e < 2 ? m0 : m1;
            const int key = key_base + nt * 8 + 2 * c + (e & 1);
            const bool ok = m.row >= 0 && key <= m.t && key >= (e < 2 ? first0 : first1);
            const float prob = ok ? fast_exp2(s[nt][e] * p.scale_log2 - m.lse2) : 0.f;
            s[nt][e] = prob;
            dp[nt][e] = prob * (dp[nt][e] - m.delta);
          }
          *reinterpret_cast<uint32_t*>(&sm.p[i0][nt * 8 + 2 * c]) = pack_bf16(s[nt][0], s[nt][1]);
          *reinterpret_cast<uint32_t*>(&sm.p[i1][nt * 8 + 2 * c]) = pack_bf16(s[nt][2], s[nt][3]);
          *reinterpret_cast<uint32_t*>(&sm.ds[i0][nt * 8 + 2 * c]) = pack_bf16(dp[nt][0], dp[nt][1]);
          *reinterpret_cast<uint32_t*>(&sm.ds[i1][nt * 8 + 2 * c]) = pack_bf16(dp[nt][2], dp[nt][3]);
        }
        // dQ = scale * dS K, reduced into the float32 accumulator.
        if constexpr (kDq) {
          float dq[ND][4];
#pragma unroll
          for (int nt = 0; nt < ND; ++nt) dq[nt][0] = dq[nt][1] = dq[nt][2] = dq[nt][3] = 0.f;
#pragma unroll
          for (int kk = 0; kk < KT / 16; ++kk) {
            uint32_t ads[4];
            ads[0] = pack_bf16(dp[2 * kk][0], dp[2 * kk][1]);
            ads[1] = pack_bf16(dp[2 * kk][2], dp[2 * kk][3]);
            ads[2] = pack_bf16(dp[2 * kk + 1][0], dp[2 * kk + 1][1]);
            ads[3] = pack_bf16(dp[2 * kk + 1][2], dp[2 * kk + 1][3]);
#pragma unroll
            for (int np = 0; np < D / 16; ++np) {
              uint32_t bk[4];
              ldmatrix_x4_trans(bk, &sm.k[kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8][np * 16 + (lane / 16) * 8]);
              mma_bf16(dq[2 * np], ads, bk[0], bk[1]);
              mma_bf16(dq[2 * np + 1], ads, bk[2], bk[3]);
            }
          }
          if (m0.row >= 0) {
            float* dst = a.dq + m0.row * D + 2 * c;
#pragma unroll
            for (int nt = 0; nt < ND; ++nt) red_add_v2(dst + nt * 8, dq[nt][0] * p.scale, dq[nt][1] * p.scale);
          }
          if (m1.row >= 0) {
            float* dst = a.dq + m1.row * D + 2 * c;
#pragma unroll
            for (int nt = 0; nt < ND; ++nt) red_add_v2(dst + nt * 8, dq[nt][2] * p.scale, dq[nt][3] * p.scale);
          }
        }
        __syncthreads();
        // dV += P^T dO and dK += dS^T Q over the 64 rows; this warp owns a quarter of the columns.
#pragma unroll
        for (int ks = 0; ks < kTileRows / 16; ++ks) {
          uint32_t bdo[NDW][2], bq[NDW][2];
#pragma unroll
          for (int np = 0; np < NDW / 2; ++np) {
            uint32_t r4[4];
            const int rr = ks * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
            const int cc = warp * (D / 4) + np * 16 + (lane / 16) * 8;
            ldmatrix_x4_trans(r4, &sm.dout[stage][rr][cc]);
            bdo[2 * np][0] = r4[0], bdo[2 * np][1] = r4[1], bdo[2 * np + 1][0] = r4[2], bdo[2 * np + 1][1] = r4[3];
            ldmatrix_x4_trans(r4, &sm.q[stage][rr][cc]);
            bq[2 * np][0] = r4[0], bq[2 * np][1] = r4[1], bq[2 * np + 1][0] = r4[2], bq[2 * np + 1][1] = r4[3];
          }
#pragma unroll
          for (int mt = 0; mt < MKT; ++mt) {
            uint32_t ap[4], ads[4];
            const int rr = ks * 16 + (lane % 8) + (lane / 16) * 8;
            const int cc = mt * 16 + ((lane / 8) % 2) * 8;
            ldmatrix_x4_trans(ap, &sm.p[rr][cc]);
            ldmatrix_x4_trans(ads, &sm.ds[rr][cc]);
#pragma unroll
            for (int nt = 0; nt < NDW; ++nt) {
              mma_bf16(dv_acc[mt][nt], ap, bdo[nt][0], bdo[nt][1]);
              mma_bf16(dk_acc[mt][nt], ads, bq[nt][0], bq[nt][1]);
            }
          }
        }
        __syncthreads();
      }
      cp_async_wait<0>();

      // Flush this key tile's partial dK, dV.
#pragma unroll
      for (int mt = 0; mt < MKT; ++mt) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int key = key_base + mt * 16 + g + half * 8;
          if (key >= p.T || mt * 16 + g + half * 8 >= p.Bs) continue;
          float* dkr = a.dk + ((b * p.T + key) * p.Hkv + hk) * D + warp * (D / 4) + 2 * c;
          float* dvr = a.dv + ((b * p.T + key) * p.Hkv + hk) * D + warp * (D / 4) + 2 * c;
#pragma unroll
          for (int nt = 0; nt < NDW; ++nt) {
            red_add_v2(dkr + nt * 8, dk_acc[mt][nt][2 * half] * p.scale, dk_acc[mt][nt][2 * half + 1] * p.scale);
            red_add_v2(dvr + nt * 8, dv_acc[mt][nt][2 * half], dv_acc[mt][nt][2 * half + 1]);
          }
        }
      }
    }
    row = piece_end;
  }
}

// Key-major forward, in two passes over the same segments as the backward. Pass A reduces the
// row maxima of the raw scores into `row_max` (integer atomics on the float bits); pass B forms
// p = exp(s - max) and reduces sum(p) into `row_sum` and p V into the float32 output accumulator.
// finalize_kernel divides. Each gathered row costs a query-row load per pass and one float32
// row reduction, against a whole K/V block per (token, selection head) for the query-major kernel.

__device__ __forceinline__ void atomic_max_float(float* address, float value) {
  value += 0.0f;  // -0 becomes +0, which the integer order below needs
  if (value >= 0.f) atomicMax(reinterpret_cast<int*>(address), __float_as_int(value));
  else atomicMin(reinterpret_cast<unsigned*>(address), __float_as_uint(value));
}

struct KeysArgs {
  const __nv_bfloat16* q;
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  const int32_t* offsets;
  const int32_t* entries;
  const int64_t* cta_segment;
  float* row_max;  // [rows], all bits set before pass A (below every float in the order used)
  float* row_sum;  // [rows], zero before pass B
  float* out;      // [rows, D], zero before pass B
  int64_t segments;
  int64_t chunks;
  int64_t rows_total;
};

template <int D, int KT>
struct KeysSmem {
  static constexpr int STRIDE = D + 8;
  __nv_bfloat16 q[2][kTileRows][STRIDE];
  __nv_bfloat16 k[KT][STRIDE];
  __nv_bfloat16 v[KT][STRIDE];
  int64_t row[2][kTileRows];
  int t[2][kTileRows];
  float max[2][kTileRows];
};

template <int D, int KT, bool kMaxPass>
__global__ void __launch_bounds__(128) sparse_forward_keys_kernel(KeysArgs a, Dims p) {
  using Smem = KeysSmem<D, KT>;
  constexpr int KS = D / 16;
  constexpr int NKT = KT / 8;
  constexpr int ND = D / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem& sm = *reinterpret_cast<Smem*>(smem_raw);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  const int R = p.R;

  const int64_t row_begin = static_cast<int64_t>(blockIdx.x) * kTileRows * kTilesPerCta;
  const int64_t row_end = std::min<int64_t>(row_begin + kTileRows * kTilesPerCta, a.rows_total);
  int64_t row = row_begin;
  int64_t seg = a.cta_segment[blockIdx.x];
  while (row < row_end && seg < a.segments) {
    const int64_t seg_first = static_cast<int64_t>(a.offsets[seg]) * R;
    const int64_t seg_last = static_cast<int64_t>(a.offsets[seg + 1]) * R;
    if (seg_last <= row) {
      seg = find_segment(a.offsets, a.segments, seg, row / R);
      continue;
    }
    const int64_t piece_begin = std::max(row, seg_first);
    const int64_t piece_end = std::min(row_end, seg_last);
    const int64_t j = seg % p.num_blocks;
    const int64_t bhq = seg / p.num_blocks / a.chunks;
    const int hk = static_cast<int>(bhq % p.Hkv);
    const int64_t b = bhq / p.Hkv;
    const __nv_bfloat16* k_head = a.k + (b * p.T * p.Hkv + hk) * D;
    const __nv_bfloat16* v_head = a.v + (b * p.T * p.Hkv + hk) * D;
    const int key_stride = p.Hkv * D;  // key offsets within a sequence are 32-bit (check_sparse_attention_shape)

    for (int kt = 0; kt * KT < p.Bs; ++kt) {
      const int key_base = static_cast<int>(j) * p.Bs + kt * KT;
      auto issue = [&](const Located& l, int stage) {
        const int i = threadIdx.x / 2, half = threadIdx.x % 2;
        const bool ok = l.row >= 0;
        if (half == 0) {
          sm.row[stage][i] = l.row;
          sm.t[stage][i] = l.t;
          if (!kMaxPass) cp_async_4(&sm.max[stage][i], a.row_max + (ok ? l.row : 0), ok);
        }
#pragma unroll
        for (int x = half; x < D / 8; x += 2) {
          cp_async_16(&sm.q[stage][i][x * 8], a.q + (ok ? l.row * D + x * 8 : 0), ok);
        }
      };
      for (int x = threadIdx.x; x < KT * (D / 8); x += 128) {
        const int rr = x / (D / 8), col = (x % (D / 8)) * 8;
        const int key = key_base + rr;
        const bool ok = key < p.T;
        const int offset = ok ? key * key_stride + col : 0;
        cp_async_16(&sm.k[rr][col], k_head + offset, ok);
        if (!kMaxPass) cp_async_16(&sm.v[rr][col], v_head + offset, ok);
      }
      GatheredRows rows(piece_begin, R);
      Located next = rows.locate(a.entries, piece_end, p, b, hk);
      issue(next, 0);
      cp_async_commit();
      rows.advance(p);
      next = rows.locate(a.entries, piece_end, p, b, hk);

      int stage = 0;
      for (int64_t tile_first = piece_begin; tile_first < piece_end; tile_first += kTileRows, stage ^= 1) {
        if (tile_first + kTileRows < piece_end) issue(next, stage ^ 1);
        cp_async_commit();
        if (tile_first + 2 * kTileRows < piece_end) {
          rows.advance(p);
          next = rows.locate(a.entries, piece_end, p, b, hk);
        }
        cp_async_wait<1>();
        __syncthreads();

        const int i0 = warp * 16 + g, i1 = i0 + 8;
        const int64_t row0 = sm.row[stage][i0], row1 = sm.row[stage][i1];
        const int t0 = sm.t[stage][i0], t1 = sm.t[stage][i1];
        // First visible key of each row's token (document masking; 0 without).
        const int first0 = p.document_start != nullptr && row0 >= 0 ? p.document_start[b * p.T + t0] : 0;
        const int first1 = p.document_start != nullptr && row1 >= 0 ? p.document_start[b * p.T + t1] : 0;
        float s[NKT][4];
#pragma unroll
        for (int nt = 0; nt < NKT; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
        for (int ks = 0; ks < KS; ++ks) {
          uint32_t aq[4];
          ldmatrix_x4(aq, &sm.q[stage][warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8][ks * 16 + (lane / 16) * 8]);
#pragma unroll
          for (int np = 0; np < KT / 16; ++np) {
            uint32_t bk[4];
            ldmatrix_x4(bk, &sm.k[np * 16 + (lane % 8) + (lane / 16) * 8][ks * 16 + ((lane / 8) % 2) * 8]);
            mma_bf16(s[2 * np], aq, bk[0], bk[1]);
            mma_bf16(s[2 * np + 1], aq, bk[2], bk[3]);
          }
        }
        if (kMaxPass) {
          float m0 = -INFINITY, m1 = -INFINITY;
#pragma unroll
          for (int nt = 0; nt < NKT; ++nt) {
            const int key = key_base + nt * 8 + 2 * c;
            if (key <= t0 && key >= first0) m0 = fmaxf(m0, s[nt][0]);
            if (key + 1 <= t0 && key + 1 >= first0) m0 = fmaxf(m0, s[nt][1]);
            if (key <= t1 && key >= first1) m1 = fmaxf(m1, s[nt][2]);
            if (key + 1 <= t1 && key + 1 >= first1) m1 = fmaxf(m1, s[nt][3]);
          }
          m0 = fmaxf(m0, __shfl_xor_sync(kFullMask, m0, 1));
          m0 = fmaxf(m0, __shfl_xor_sync(kFullMask, m0, 2));
          m1 = fmaxf(m1, __shfl_xor_sync(kFullMask, m1, 1));
          m1 = fmaxf(m1, __shfl_xor_sync(kFullMask, m1, 2));
          if (c == 0 && row0 >= 0 && m0 > -INFINITY) atomic_max_float(a.row_max + row0, m0);
          if (c == 0 && row1 >= 0 && m1 > -INFINITY) atomic_max_float(a.row_max + row1, m1);
        } else {
          const float base0 = sm.max[stage][i0] * p.scale_log2, base1 = sm.max[stage][i1] * p.scale_log2;
          float l0 = 0.f, l1 = 0.f;
#pragma unroll
          for (int nt = 0; nt < NKT; ++nt) {
            const int key = key_base + nt * 8 + 2 * c;
            const bool ok0 = row0 >= 0 && key <= t0 && key >= first0;
            const bool ok1 = row0 >= 0 && key + 1 <= t0 && key + 1 >= first0;
            const bool ok2 = row1 >= 0 && key <= t1 && key >= first1;
            const bool ok3 = row1 >= 0 && key + 1 <= t1 && key + 1 >= first1;
            s[nt][0] = ok0 ? fast_exp2(fmaf(s[nt][0], p.scale_log2, -base0)) : 0.f;
            s[nt][1] = ok1 ? fast_exp2(fmaf(s[nt][1], p.scale_log2, -base0)) : 0.f;
            s[nt][2] = ok2 ? fast_exp2(fmaf(s[nt][2], p.scale_log2, -base1)) : 0.f;
            s[nt][3] = ok3 ? fast_exp2(fmaf(s[nt][3], p.scale_log2, -base1)) : 0.f;
            l0 += s[nt][0] + s[nt][1];
            l1 += s[nt][2] + s[nt][3];
          }
          l0 += __shfl_xor_sync(kFullMask, l0, 1);
          l0 += __shfl_xor_sync(kFullMask, l0, 2);
          l1 += __shfl_xor_sync(kFullMask, l1, 1);
          l1 += __shfl_xor_sync(kFullMask, l1, 2);
          if (c == 0 && row0 >= 0) atomicAdd(a.row_sum + row0, l0);
          if (c == 0 && row1 >= 0) atomicAdd(a.row_sum + row1, l1);
          float o[ND][4];
#pragma unroll
          for (int nt = 0; nt < ND; ++nt) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.f;
#pragma unroll
          for (int kk = 0; kk < KT / 16; ++kk) {
            uint32_t ap[4];
            ap[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            ap[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            ap[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            ap[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int np = 0; np < D / 16; ++np) {
              uint32_t bv[4];
              ldmatrix_x4_trans(bv, &sm.v[kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8][np * 16 + (lane / 16) * 8]);
              mma_bf16(o[2 * np], ap, bv[0], bv[1]);
              mma_bf16(o[2 * np + 1], ap, bv[2], bv[3]);
            }
          }
          if (row0 >= 0) {
            float* dst = a.out + row0 * D + 2 * c;
#pragma unroll
            for (int nt = 0; nt < ND; ++nt) red_add_v2(dst + nt * 8, o[nt][0], o[nt][1]);
          }
          if (row1 >= 0) {
            float* dst = a.out + row1 * D + 2 * c;
#pragma unroll
            for (int nt = 0; nt < ND; ++nt) red_add_v2(dst + nt * 8, o[nt][2], o[nt][3]);
          }
        }
        __syncthreads();
      }
      cp_async_wait<0>();
    }
    row = piece_end;
  }
}

// out = accumulator / row_sum in bf16; lse = natural log-sum-exp of the scaled scores.
__global__ void finalize_kernel(const float* __restrict__ acc, const float* __restrict__ row_max,
                                const float* __restrict__ row_sum, __nv_bfloat16* __restrict__ out,
                                float* __restrict__ lse, int64_t rows, int D, float scale_log2) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // 4 elements each
  const int64_t row = i * 4 / D;
  if (row >= rows) return;
  const float inv = 1.f / row_sum[row];
  const float4 x = reinterpret_cast<const float4*>(acc)[i];
  uint2 packed;
  packed.x = pack_bf16(x.x * inv, x.y * inv);
  packed.y = pack_bf16(x.z * inv, x.w * inv);
  reinterpret_cast<uint2*>(out)[i] = packed;
  if ((i * 4) % D == 0) lse[row] = (row_max[row] * scale_log2 + __log2f(row_sum[row])) * kLn2;
}

template <int D, int KT>
void launch_forward_keys(const KeysArgs& args, const Dims& p, int64_t ctas, cudaStream_t stream) {
  const size_t smem = sizeof(KeysSmem<D, KT>);
  auto max_pass = sparse_forward_keys_kernel<D, KT, true>;
  auto sum_pass = sparse_forward_keys_kernel<D, KT, false>;
  SSA_CUDA_CHECK(cudaFuncSetAttribute(max_pass, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  SSA_CUDA_CHECK(cudaFuncSetAttribute(sum_pass, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  if (ctas == 0) return;
  max_pass<<<static_cast<unsigned>(ctas), 128, smem, stream>>>(args, p);
  SSA_CUDA_CHECK_LAUNCH("sparse_forward_keys_kernel<max>");
  sum_pass<<<static_cast<unsigned>(ctas), 128, smem, stream>>>(args, p);
  SSA_CUDA_CHECK_LAUNCH("sparse_forward_keys_kernel<sum>");
}

template <int D, int KT, bool kDq>
void launch_backward(const BackwardArgs& args, const Dims& p, cudaStream_t stream) {
  const size_t smem = sizeof(BackwardSmem<D, KT>);
  auto kernel = sparse_backward_kernel<D, KT, kDq>;
  SSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const int64_t per_cta = kTileRows * kTilesPerCta;
  const int64_t grid = (args.rows_total + per_cta - 1) / per_cta;
  if (grid == 0) return;
  kernel<<<static_cast<unsigned>(grid), 128, smem, stream>>>(args, p);
  SSA_CUDA_CHECK_LAUNCH("sparse_backward_kernel");
}

// Workspace of the key-major passes: float32 accumulators (the output or dQ; dK and dV), per-row
// scalars and the inverted selection (counts, offsets, entries, each CTA's first segment, scan
// scratch).
struct Layout {
  size_t acc, dk, dv, row_a, row_b, counts, offsets, entries, cta_segment, scan, total;
  size_t scan_bytes;
  int64_t entries_max;
  int64_t ctas;  // CTAs of the key-major kernels
};

size_t align_up(size_t x) { return (x + 255) / 256 * 256; }

enum class Pass { kForward, kBackwardFused, kBackwardSplit };

Layout make_layout(const SparseAttentionShape& s, Pass pass) {
  const bool backward = pass != Pass::kForward;
  const Segments seg = make_segments(s);
  Layout l{};
  l.entries_max = s.batch * s.length * s.selection_heads * s.slots;
  size_t scan_bytes = 0;
  SSA_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, static_cast<const int32_t*>(nullptr),
                                               static_cast<int32_t*>(nullptr), static_cast<int64_t>(seg.count + 1)));
  l.scan_bytes = scan_bytes;
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t here = at;
    at += align_up(bytes);
    return here;
  };
  const size_t rows = static_cast<size_t>(s.batch * s.length * s.q_heads);
  if (pass != Pass::kBackwardSplit) l.acc = take(sizeof(float) * rows * s.head_dim);
  if (backward) {
    l.dk = take(sizeof(float) * s.batch * s.length * s.kv_heads * s.head_dim);
    l.dv = take(sizeof(float) * s.batch * s.length * s.kv_heads * s.head_dim);
  }
  l.row_a = take(sizeof(float) * rows);
  if (!backward) l.row_b = take(sizeof(float) * rows);
  l.counts = take(sizeof(int32_t) * (seg.count + 1));
  l.offsets = take(sizeof(int32_t) * (seg.count + 1));
  l.entries = take(sizeof(int32_t) * std::max<int64_t>(1, l.entries_max));
  const int64_t per_cta = kTileRows * kTilesPerCta;
  l.ctas = (l.entries_max * (s.q_heads / s.selection_heads) + per_cta - 1) / per_cta;
  l.cta_segment = take(sizeof(int64_t) * std::max<int64_t>(1, l.ctas));
  l.scan = take(scan_bytes);
  l.total = at;
  return l;
}

void fail(const std::string& what) { throw std::invalid_argument("sparse attention kernels: " + what); }

struct Index {
  const int32_t* offsets;
  const int32_t* entries;
  const int64_t* cta_segment;
};

// Inverts the selection into segments (count, scan, place) and finds each CTA's first segment.
Index build_index(const int32_t* selection, unsigned char* base, const Layout& layout, const Dims& p,
                  const SparseAttentionShape& shape, cudaStream_t stream) {
  const Segments seg = make_segments(shape);
  int32_t* counts = reinterpret_cast<int32_t*>(base + layout.counts);
  int32_t* offsets = reinterpret_cast<int32_t*>(base + layout.offsets);
  int32_t* entries = reinterpret_cast<int32_t*>(base + layout.entries);
  int64_t* cta_segment = reinterpret_cast<int64_t*>(base + layout.cta_segment);
  SSA_CUDA_CHECK(cudaMemsetAsync(counts, 0, sizeof(int32_t) * (seg.count + 1), stream));
  InversionTiles tiles{};
  tiles.tokens = std::max(1, kInversionRows / p.SH);
  // A sequence shorter than a query chunk needs only the tiles of its own tokens.
  tiles.per_chunk = (std::min<int64_t>(seg.query_chunk, p.T) + tiles.tokens - 1) / tiles.tokens;
  const int64_t grid = shape.batch * p.Hkv * seg.chunks * tiles.per_chunk;
  if (grid > INT32_MAX) fail("too many selection rows for the inversion's grid");
  const size_t smem = sizeof(int32_t) * static_cast<size_t>(std::min<int64_t>(kInversionWindow, p.num_blocks));
  index_kernel<false><<<static_cast<unsigned>(grid), kInversionThreads, smem, stream>>>(
      selection, counts, nullptr, nullptr, p, seg.query_chunk, seg.chunks, tiles);
  SSA_CUDA_CHECK_LAUNCH("index_kernel<count>");
  size_t scan_bytes = layout.scan_bytes;
  SSA_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(base + layout.scan, scan_bytes, counts, offsets,
                                               static_cast<int64_t>(seg.count + 1), stream));
  SSA_CUDA_CHECK(cudaMemsetAsync(counts, 0, sizeof(int32_t) * (seg.count + 1), stream));
  index_kernel<true><<<static_cast<unsigned>(grid), kInversionThreads, smem, stream>>>(
      selection, counts, offsets, entries, p, seg.query_chunk, seg.chunks, tiles);
  SSA_CUDA_CHECK_LAUNCH("index_kernel<fill>");
  if (layout.ctas > 0) {
    cta_segments_kernel<<<static_cast<unsigned>((layout.ctas + 255) / 256), 256, 0, stream>>>(
        offsets, seg.count, kTileRows * kTilesPerCta, p.R, layout.ctas, cta_segment);
    SSA_CUDA_CHECK_LAUNCH("cta_segments_kernel");
  }
  return {offsets, entries, cta_segment};
}

}  // namespace

void check_sparse_attention_shape(const SparseAttentionShape& s) {
  if (s.batch < 1 || s.length < 1) fail("empty input");
  if (s.head_dim != 64 && s.head_dim != 128) fail("head_dim must be 64 or 128");
  if (s.kv_heads < 1 || s.q_heads % s.kv_heads != 0) fail("q_heads must be a multiple of kv_heads");
  if (s.selection_heads < s.kv_heads || s.selection_heads % s.kv_heads != 0 || s.q_heads % s.selection_heads != 0) {
    fail("selection heads must be a multiple of kv_heads dividing q_heads");
  }
  if (s.q_heads / s.selection_heads > 16) fail("more than 16 query heads share one selection");
  if (s.block_size != 16 && s.block_size != 32 && s.block_size != 64 && s.block_size != 128) {
    fail("block_size must be 16, 32, 64 or 128");
  }
  const int64_t blocks = (s.length + s.block_size - 1) / s.block_size;
  if (s.slots < 1 || s.slots > 64 || s.slots > blocks) fail("slots must be in [1, min(64, number of blocks)]");
  if (s.batch * s.length * s.selection_heads * s.slots >= (int64_t{1} << 31)) fail("too many selection entries");
  if (s.batch * s.length * s.q_heads * s.slots >= (int64_t{1} << 40)) fail("too many rows");
  if ((s.length + s.block_size) * s.kv_heads * s.head_dim >= (int64_t{1} << 31)) {
    fail("(length + block_size) * kv_heads * head_dim must stay below 2^31 (32-bit key offsets)");
  }
}

ForwardPlan choose_forward_plan(const SparseAttentionShape& s) {
  // Per gathered (row, block): query-major moves the block's K and V once per selection row, so
  // its cost grows as Bs / R (R query heads share the selection); key-major moves the query row
  // twice and reduces a float32 output row, whatever Bs. On an H100 (2026-11-25, D 64) the two
  // met near Bs = 5 R: 3.2 vs 4.2 ms at Bs 16, R 4; 11.5 vs 4.4 ms at Bs 64, R 4.
  const int64_t R = s.q_heads / s.selection_heads;
  return s.block_size >= 6 * R ? ForwardPlan::kKeyMajor : ForwardPlan::kQueryMajor;
}

size_t sparse_attention_forward_workspace_bytes(const SparseAttentionShape& shape, ForwardPlan plan) {
  check_sparse_attention_shape(shape);
  if (plan == ForwardPlan::kAuto) plan = choose_forward_plan(shape);
  return plan == ForwardPlan::kKeyMajor ? make_layout(shape, Pass::kForward).total : 0;
}

void sparse_attention_forward(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                              const int32_t* selection, __nv_bfloat16* out, float* lse, void* workspace,
                              const SparseAttentionShape& shape, cudaStream_t stream, ForwardPlan plan,
                              const int32_t* document_start) {
  check_sparse_attention_shape(shape);
  Dims p = make_dims(shape);
  p.document_start = document_start;
  if (plan == ForwardPlan::kAuto) plan = choose_forward_plan(shape);
  if (plan == ForwardPlan::kQueryMajor) {
    with_query_major_instance(p, [&](auto d, auto nt, auto ns) {
      launch_forward<decltype(d)::value, decltype(nt)::value, decltype(ns)::value>(q, k, v, selection, out, lse, p,
                                                                                   shape.batch, stream);
    });
    return;
  }
  if (workspace == nullptr) fail("the key-major forward needs its workspace");
  const Layout layout = make_layout(shape, Pass::kForward);
  auto* base = static_cast<unsigned char*>(workspace);
  const int64_t rows = shape.batch * shape.length * shape.q_heads;
  float* acc = reinterpret_cast<float*>(base + layout.acc);
  float* row_max = reinterpret_cast<float*>(base + layout.row_a);
  float* row_sum = reinterpret_cast<float*>(base + layout.row_b);
  SSA_CUDA_CHECK(cudaMemsetAsync(acc, 0, sizeof(float) * rows * p.D, stream));
  SSA_CUDA_CHECK(cudaMemsetAsync(row_max, 0xff, sizeof(float) * rows, stream));
  SSA_CUDA_CHECK(cudaMemsetAsync(row_sum, 0, sizeof(float) * rows, stream));
  const Index index = build_index(selection, base, layout, p, shape, stream);
  const Segments seg = make_segments(shape);
  KeysArgs args{};
  args.q = q;
  args.k = k;
  args.v = v;
  args.offsets = index.offsets;
  args.entries = index.entries;
  args.cta_segment = index.cta_segment;
  args.row_max = row_max;
  args.row_sum = row_sum;
  args.out = acc;
  args.segments = seg.count;
  args.chunks = seg.chunks;
  args.rows_total = layout.entries_max * p.R;
  if (p.D == 64) {
    if (p.Bs >= 64) launch_forward_keys<64, 64>(args, p, layout.ctas, stream);
    else if (p.Bs == 32) launch_forward_keys<64, 32>(args, p, layout.ctas, stream);
    else launch_forward_keys<64, 16>(args, p, layout.ctas, stream);
  } else {
    if (p.Bs >= 32) launch_forward_keys<128, 32>(args, p, layout.ctas, stream);
    else launch_forward_keys<128, 16>(args, p, layout.ctas, stream);
  }
  const int64_t quads = rows * p.D / 4;
  finalize_kernel<<<static_cast<unsigned>((quads + 255) / 256), 256, 0, stream>>>(acc, row_max, row_sum, out, lse,
                                                                                 rows, p.D, p.scale_log2);
  SSA_CUDA_CHECK_LAUNCH("finalize_kernel");
}

BackwardPlan choose_backward_plan(const SparseAttentionShape& s) {
  // The fused plan's dQ reductions cost per gathered row (a float32 row per query head through
  // red.global), the split plan's dQ kernel per selected block (its K and V, whatever R). On an
  // H100 (2026-11-28, D 64, Bs 16, 8k x 4, ncu): the fused kernel less the one without dQ took
  // 1.5 ms for 16.8M rows, the dQ kernel 0.9 ms for 1M (R 16) and 3.2 ms for 4M (R 4) selection
  // entries, so the two meet near R = 8.5 at Bs 16; the dQ kernel's loads grow with Bs. At R 16
  // the whole backward took 2.8 ms split against 3.7 ms fused at Bs 16, 6.3 ms against 4.7 ms at
  // Bs 64.
  const int64_t R = s.q_heads / s.selection_heads;
  return 2 * R > s.block_size ? BackwardPlan::kSplit : BackwardPlan::kFused;
}

size_t sparse_attention_backward_workspace_bytes(const SparseAttentionShape& shape, BackwardPlan plan) {
  check_sparse_attention_shape(shape);
  if (plan == BackwardPlan::kAuto) plan = choose_backward_plan(shape);
  return make_layout(shape, plan == BackwardPlan::kSplit ? Pass::kBackwardSplit : Pass::kBackwardFused).total;
}

void sparse_attention_backward(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                               const __nv_bfloat16* out, const __nv_bfloat16* grad_out, const float* lse,
                               const int32_t* selection, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                               void* workspace, const SparseAttentionShape& shape, cudaStream_t stream,
                               BackwardPlan plan, const int32_t* document_start) {
  check_sparse_attention_shape(shape);
  if (plan == BackwardPlan::kAuto) plan = choose_backward_plan(shape);
  const bool split = plan == BackwardPlan::kSplit;
  Dims p = make_dims(shape);
  p.document_start = document_start;
  const Segments seg = make_segments(shape);
  const Layout layout = make_layout(shape, split ? Pass::kBackwardSplit : Pass::kBackwardFused);
  auto* base = static_cast<unsigned char*>(workspace);
  float* dq_acc = split ? nullptr : reinterpret_cast<float*>(base + layout.acc);
  float* dk_acc = reinterpret_cast<float*>(base + layout.dk);
  float* dv_acc = reinterpret_cast<float*>(base + layout.dv);
  float* delta = reinterpret_cast<float*>(base + layout.row_a);

  const int64_t q_elems = shape.batch * shape.length * shape.q_heads * shape.head_dim;
  const int64_t kv_elems = shape.batch * shape.length * shape.kv_heads * shape.head_dim;
  if (!split) SSA_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, sizeof(float) * q_elems, stream));
  SSA_CUDA_CHECK(cudaMemsetAsync(dk_acc, 0, sizeof(float) * kv_elems, stream));
  SSA_CUDA_CHECK(cudaMemsetAsync(dv_acc, 0, sizeof(float) * kv_elems, stream));
  const Index index = build_index(selection, base, layout, p, shape, stream);

  const int64_t rows = shape.batch * shape.length * shape.q_heads;
  delta_kernel<<<static_cast<unsigned>((rows * 8 + 255) / 256), 256, 0, stream>>>(out, grad_out, delta, rows, p.D);
  SSA_CUDA_CHECK_LAUNCH("delta_kernel");

  if (split) {
    with_query_major_instance(p, [&](auto d, auto nt, auto ns) {
      launch_backward_dq<decltype(d)::value, decltype(nt)::value, decltype(ns)::value>(
          q, k, v, grad_out, lse, delta, selection, dq, p, shape.batch, stream);
    });
  }

  BackwardArgs args{};
  args.q = q;
  args.k = k;
  args.v = v;
  args.grad_out = grad_out;
  args.lse = lse;
  args.delta = delta;
  args.offsets = index.offsets;
  args.entries = index.entries;
  args.cta_segment = index.cta_segment;
  args.dq = dq_acc;
  args.dk = dk_acc;
  args.dv = dv_acc;
  args.segments = seg.count;
  args.query_chunk = seg.query_chunk;
  args.chunks = seg.chunks;
  args.rows_total = layout.entries_max * p.R;
  auto key_major = [&](auto dq_flag) {
    constexpr bool kDq = decltype(dq_flag)::value;
    if (p.D == 64) {
      if (p.Bs >= 64) launch_backward<64, 64, kDq>(args, p, stream);
      else if (p.Bs == 32) launch_backward<64, 32, kDq>(args, p, stream);
      else launch_backward<64, 16, kDq>(args, p, stream);
    } else {
      if (p.Bs >= 32) launch_backward<128, 32, kDq>(args, p, stream);
      else launch_backward<128, 16, kDq>(args, p, stream);
    }
  };
  if (split) key_major(std::false_type{});
  else key_major(std::true_type{});

  auto convert = [&](const float* src, __nv_bfloat16* dst, int64_t n) {
    const int64_t n4 = n / 4;  // D is a multiple of 64, so n is a multiple of 4
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>((n4 + 255) / 256, 65536));
    to_bf16_kernel<<<grid, 256, 0, stream>>>(src, dst, n4);
    SSA_CUDA_CHECK_LAUNCH("to_bf16_kernel");
  };
  if (!split) convert(dq_acc, dq, q_elems);
  convert(dk_acc, dk, kv_elems);
  convert(dv_acc, dv, kv_elems);
}

}  // namespace ssa::kernels
