// Block selection (routing): block means, then one fused pass (two for `group`) per query tile
// over all past blocks with an exact streaming top-k. See block_select.h.
//
// Exactness. The reference scores q . kbar in float32 with kbar the float32 mean. Tensor cores take
// bf16, so kbar is split as hi + lo (hi = bf16(kbar), lo = bf16(kbar - hi)) and the score is the
// float32 sum of two MMAs: its error is about 2^-17 relative instead of bf16's 2^-9, which keeps
// disagreements with the reference down to near-ties.
//
// Layout of one CTA: one (batch, KV head) and a tile of consecutive tokens; W warps (select_warps),
// each owning 16 MMA rows = (16 / Gp) tokens x Gp heads of the group (Gp = G rounded up to a power
// of two; rows of heads >= G are padding). Row r of a warp is token r % TQw, head r / TQw. The kbar
// tiles of 64 blocks are shared by the W warps through shared memory (double-buffered cp.async).
//
// `group` (G >= 2): pass 0 computes each row's log-sum-exp over its past blocks, pass 1 recomputes
// the scores, forms p = exp(s - lse), sums p over the heads of each token (register adds and xor
// shuffles, since the heads of a token sit in lanes that differ only in the high bits of lane / 4)
// and feeds the top-k. `head`, and `group` with G = 1: one pass, the raw float32 score of each
// row feeds its own top-k.
//
// Top-k: each selection row's list lives in the registers of a group of lanes (the 4 lanes of an
// MMA row, or the 4 x 8 / TQw lanes holding a token's sums), E entries per lane, sorted in
// decreasing order. Lanes compare their values against the list's current threshold (its last
// entry); the survivors are inserted one per group per round, all groups of the warp in lockstep
// (a shuffle carries each lane's last entry to the next lane for the shift), and each round first
// drops the candidates the risen threshold has passed. On a stream of n values a list of m entries
// sees about m (1 + ln(n / m)) insertions. A warp's token lists take the candidates of 16 blocks per
// call (8 with two heads per group): fewer calls, and the lockstep rounds of its lists overlap
// better (a simulation of 1024 blocks, four lists per warp: 130 rounds instead of 153).
#include "block_select.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda_check.h"
#include "tensor_core.cuh"

namespace ssa::kernels {
namespace {

constexpr int kTileBlocks = 64;  // past blocks per shared-memory tile

int64_t complete_blocks(const BlockSelectShape& s) { return s.length / s.block_size; }

// One warp per complete block: kbar = mean of its keys in float32, stored as bf16 hi + lo.
__global__ void block_means_kernel(const __nv_bfloat16* __restrict__ k, __nv_bfloat16* __restrict__ hi,
                                   __nv_bfloat16* __restrict__ lo, int64_t T, int Hkv, int D, int Bs,
                                   int64_t num_complete, int64_t total) {
  const int64_t item = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (item >= total) return;
  const int64_t j = item % num_complete;
  const int64_t bh = item / num_complete;
  const int h = static_cast<int>(bh % Hkv);
  const int64_t b = bh / Hkv;
  for (int d = lane * 2; d < D; d += 64) {
    float s0 = 0.f, s1 = 0.f;
    const __nv_bfloat16* src = k + ((b * T + j * Bs) * Hkv + h) * D + d;
    for (int u = 0; u < Bs; ++u) {
      const __nv_bfloat162 x = *reinterpret_cast<const __nv_bfloat162*>(src + static_cast<int64_t>(u) * Hkv * D);
      s0 += __bfloat162float(x.x);
      s1 += __bfloat162float(x.y);
    }
    // Divided (as ATen's mean does), not multiplied by 1/Bs, which can differ in the last bit.
    const float m0 = s0 / static_cast<float>(Bs), m1 = s1 / static_cast<float>(Bs);
    const __nv_bfloat16 h0 = __float2bfloat16_rn(m0), h1 = __float2bfloat16_rn(m1);
    const int64_t o = item * D + d;
    hi[o] = h0;
    hi[o + 1] = h1;
    lo[o] = __float2bfloat16_rn(m0 - __bfloat162float(h0));
    lo[o + 1] = __float2bfloat16_rn(m1 - __bfloat162float(h1));
  }
}

struct SelectParams {
  int64_t T;
  int Hq, Hkv, G, TQw, Bs;
  int64_t num_complete;
  int K;  // slots per selection row
  float scale_log2;  // log2(e) / sqrt(D), group only
  const int32_t* document_start;  // [B, T] first token of each token's document, or nullptr
};

// A top-k list spread over the P lanes of a lane group: lane `member` holds entries
// [member * E, member * E + E) of a list sorted in decreasing order; entries at and past index m
// stay -inf. All groups of the warp insert in lockstep, one candidate per group per round.
// Lanes whose g agree modulo tq (with any c) form a group; `member` indexes a lane within it.
// Everything the insertion loop needs is computed once per thread.
struct LaneGroup {
  int member;
  int tq;             // a power of two
  unsigned mask;      // lanes of this lane's group
  int first_entry;    // member * E
  int holder;         // lane holding entry m - 1 (the threshold)
  int previous;       // lane of member - 1 (itself for member 0)
  __device__ static int lane_of(int index, int g, int tq) {
    return 4 * ((g & (tq - 1)) + (index >> 2) * tq) + (index & 3);
  }
};

// Inserts, round by round, the candidates of every lane (up to two, `pending` bits 0 and 1 for
// values v0, v1 with ids id0, id1) into this lane group's list. Each entry decides its new value
// from itself and its predecessor (the previous lane's last entry for a lane's first): it keeps
// its value if that is >= v, takes v if the predecessor is >= v, else takes the predecessor. No
// group-wide position is needed, which keeps the round short: one vote, three shuffles.
template <int E>
__device__ __forceinline__ void insert_candidates(float (&values)[E], int (&ids)[E], float& threshold, unsigned pending,
                                                  float v0, float v1, int id0, int id1, const LaneGroup& grp, int m,
                                                  int lane) {
  while (true) {
    // Candidates the list's threshold has risen past since they were taken cost no round.
    pending &= (v0 > threshold ? 1u : 0u) | (v1 > threshold ? 2u : 0u);
    const unsigned all = __ballot_sync(kFullMask, pending != 0);
    if (all == 0) break;
    const unsigned ballot = all & grp.mask;
    const int leader = ballot ? __ffs(ballot) - 1 : lane;
    const float mine = (pending & 1u) ? v0 : v1;
    const int mine_id = (pending & 1u) ? id0 : id1;
    const float v = __shfl_sync(kFullMask, mine, leader);
    const int id = __shfl_sync(kFullMask, mine_id, leader);
    const float carried = __shfl_sync(kFullMask, values[E - 1], grp.previous);
    const int carried_id = __shfl_sync(kFullMask, ids[E - 1], grp.previous);
    if (lane == leader) pending &= pending - 1;
    if (ballot != 0) {
#pragma unroll
      for (int e = E - 1; e >= 0; --e) {
        const int index = grp.first_entry + e;
        if (index >= m || values[e] >= v) continue;
        const float above = e > 0 ? values[e - 1] : (index == 0 ? INFINITY : carried);
        const int above_id = e > 0 ? ids[e - 1] : carried_id;
        if (above >= v) {
          values[e] = v;
          ids[e] = id;
        } else {
          values[e] = above;
          ids[e] = above_id;
        }
      }
    }
    float last = -INFINITY;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      if (grp.first_entry + e == m - 1) last = values[e];
    }
    threshold = __shfl_sync(kFullMask, last, grp.holder);
  }
}

// Latency bound (fixed-latency dependencies: MMA, exp2, shuffles, votes): as many warps per SM
// as registers allow. With head_dim 64 the `group` kernel with lists of up to two entries per lane
// fits 24 warps in 80 registers, as three CTAs of eight warps: each kbar tile then streams from L2
// once per eight warps (half the L2 traffic of six CTAs of four, and 2-3% faster). Two lists per
// row or entries of four: five CTAs of four warps (a few bytes spill); longer lists and head_dim
// 128 (whose tiles fill shared memory at three CTAs) three of four.
template <int D, bool kGroup, int E>
constexpr int select_warps() {
  return D == 64 && kGroup && E <= 2 ? 8 : 4;
}
template <int D, bool kGroup, int E>
constexpr int select_min_ctas() {
  if (D != 64) return 3;
  return kGroup && E <= 2 ? 3 : E <= 4 ? 5 : 3;
}

template <int D, bool kGroup, int E>
__global__ void __launch_bounds__(select_warps<D, kGroup, E>() * 32, select_min_ctas<D, kGroup, E>())
    block_select_kernel(const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ kbar_hi,
                        const __nv_bfloat16* __restrict__ kbar_lo, int32_t* __restrict__ selection, SelectParams p) {
  constexpr int kWarps = select_warps<D, kGroup, E>();
  constexpr int kThreads = kWarps * 32;
  constexpr int KS = D / 16;      // k-steps of the score MMA
  constexpr int STRIDE = D + 8;   // padded smem row (bf16): ldmatrix rows hit distinct banks
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* kb = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [2 stages][hi, lo][64][STRIDE]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  const int TQw = p.TQw, G = p.G, Bs = p.Bs;
  const int TQ = kWarps * TQw;
  const int h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int64_t tile = gridDim.x - 1 - blockIdx.x;  // the longest rows (last tokens) start first
  const int64_t t_cta = tile * TQ;
  const int64_t t_warp = t_cta + static_cast<int64_t>(warp) * TQw;
  const int H_sel = kGroup ? p.Hkv : p.Hq;
  const int m = p.K - 1;  // past slots

  // This thread's two MMA rows.
  const int r0 = g, r1 = g + 8;
  const int64_t t0 = t_warp + r0 % TQw, t1 = t_warp + r1 % TQw;
  const int h0 = r0 / TQw, h1 = r1 / TQw;
  const bool row0_ok = t0 < p.T && h0 < G, row1_ok = t1 < p.T && h1 < G;
  const int past0 = static_cast<int>(t0 / Bs), past1 = static_cast<int>(t1 / Bs);  // current block index
  const int warp_past = static_cast<int>(t_warp / Bs);  // every row of the warp has at least this many
  // First candidate block of each row: the block of its document's first token (0 without masking).
  const int first0 = p.document_start != nullptr && t0 < p.T ? p.document_start[b * p.T + t0] / Bs : 0;
  const int first1 = p.document_start != nullptr && t1 < p.T ? p.document_start[b * p.T + t1] / Bs : 0;

  const int64_t t_last = std::min<int64_t>(t_cta + TQ, p.T) - 1;
  const int candidates = (m > 0 && t_cta < p.T) ? static_cast<int>(t_last / Bs) : 0;
  const int tiles = (candidates + kTileBlocks - 1) / kTileBlocks;

  // Lists: one per token when the heads of a group are summed (`by_token`), else one per MMA row
  // (list 0 for row g, list 1 for row g + 8). by_token: the 8 / TQw lanes g = t, t + TQw, ...
  // hold the same sums; each takes every reps-th n-tile, and all of them share the token's list.
  constexpr bool by_token = kGroup;
  LaneGroup grp;
  grp.tq = by_token ? TQw : 8;
  grp.member = c + 4 * (g / grp.tq);
  const int reps = by_token ? 8 / TQw : 1;
  const int my_replica = grp.member >> 2;
  grp.mask = 0;
  for (int i = 0; i < 4 * reps; ++i) grp.mask |= 1u << LaneGroup::lane_of(i, g, grp.tq);
  grp.first_entry = grp.member * E;
  grp.holder = LaneGroup::lane_of(m > 0 ? (m - 1) / E : 0, g, grp.tq);
  grp.previous = LaneGroup::lane_of(grp.member > 0 ? grp.member - 1 : 0, g, grp.tq);
  float lv[2][E];
  int li[2][E];
#pragma unroll
  for (int x = 0; x < 2; ++x)
#pragma unroll
    for (int e = 0; e < E; ++e) lv[x][e] = -INFINITY, li[x][e] = -1;
  float threshold[2] = {-INFINITY, -INFINITY};

  if (tiles > 0) {
    // Query fragments (A operand), kept in registers for the whole kernel.
    uint32_t qa[KS][4];
    {
      const __nv_bfloat16* q0 = q + ((b * p.T + t0) * p.Hq + static_cast<int64_t>(h) * G + h0) * D;
      const __nv_bfloat16* q1 = q + ((b * p.T + t1) * p.Hq + static_cast<int64_t>(h) * G + h1) * D;
#pragma unroll
      for (int ks = 0; ks < KS; ++ks) {
        const int col = ks * 16 + 2 * c;
        qa[ks][0] = row0_ok ? *reinterpret_cast<const uint32_t*>(q0 + col) : 0u;
        qa[ks][1] = row1_ok ? *reinterpret_cast<const uint32_t*>(q1 + col) : 0u;
        qa[ks][2] = row0_ok ? *reinterpret_cast<const uint32_t*>(q0 + col + 8) : 0u;
        qa[ks][3] = row1_ok ? *reinterpret_cast<const uint32_t*>(q1 + col + 8) : 0u;
      }
    }
    // Each thread copies the same 16-byte pieces of every tile: column copy_col of rows
    // copy_row + n * kRowStep of hi and of lo. Its addresses are fixed here, so that a tile costs
    // a pointer offset and a row count (the copies were a quarter of the kernel's instructions when
    // every piece's row and column were derived from a flat index).
    constexpr int kPiecesPerRow = D / 8;
    constexpr int kRowStep = kThreads / kPiecesPerRow;
    constexpr int kSweeps = kTileBlocks / kRowStep;
    static_assert(kTileBlocks % kRowStep == 0, "a tile is a whole number of sweeps");
    const int copy_row = threadIdx.x / kPiecesPerRow, copy_col = (threadIdx.x % kPiecesPerRow) * 8;
    const int64_t head_offset = (b * p.Hkv + h) * p.num_complete * D + copy_row * D + copy_col;
    const __nv_bfloat16* hi_src = kbar_hi + head_offset;
    const __nv_bfloat16* lo_src = kbar_lo + head_offset;
    __nv_bfloat16* copy_dst = kb + copy_row * STRIDE + copy_col;
    auto load_tile = [&](int stage, int jt) {
      const int64_t first = static_cast<int64_t>(jt) * kTileBlocks;
      const int rows_left = static_cast<int>(std::min<int64_t>(p.num_complete - first, kTileBlocks)) - copy_row;
      const __nv_bfloat16* hi_tile = hi_src + first * D;
      const __nv_bfloat16* lo_tile = lo_src + first * D;
      __nv_bfloat16* dst = copy_dst + stage * 2 * kTileBlocks * STRIDE;
#pragma unroll
      for (int n = 0; n < kSweeps; ++n) {
        // Rows past the last block are zero-filled; cp.async reads nothing for them.
        const bool ok = n * kRowStep < rows_left;
        cp_async_16(dst + n * kRowStep * STRIDE, hi_tile + n * kRowStep * D, ok);
        cp_async_16(dst + (kTileBlocks + n * kRowStep) * STRIDE, lo_tile + n * kRowStep * D, ok);
      }
    };
    // A tile is `plain` for the warp when every column is a candidate of every real row: no
    // per-element masks then (padding rows are silenced through their log-sum-exp instead).
    const int warp_first = __reduce_max_sync(kFullMask, max(first0, first1));

    // Pass 0 statistics (log2 domain, unscaled scores), per lane over its own columns: running
    // max and sum; the 4 lanes of a row are merged once, after the pass.
    float mx0 = -INFINITY, mx1 = -INFINITY, sum0 = 0.f, sum1 = 0.f;
    float lse0 = 0.f, lse1 = 0.f;
    const float scale = p.scale_log2;
    const int ld_row = (lane % 8) + (lane / 16) * 8, ld_col = ((lane / 8) % 2) * 8;

    for (int pass = kGroup ? 0 : 1; pass < 2; ++pass) {
      if (pass == 1 && kGroup) {
        auto merge = [&](float mx, float sum) {
          float top = fmaxf(mx, __shfl_xor_sync(kFullMask, mx, 1));
          top = fmaxf(top, __shfl_xor_sync(kFullMask, top, 2));
          float scaled = top > -INFINITY ? sum * fast_exp2((mx - top) * scale) : 0.f;
          scaled += __shfl_xor_sync(kFullMask, scaled, 1);
          scaled += __shfl_xor_sync(kFullMask, scaled, 2);
          return scaled > 0.f ? top * scale + __log2f(scaled) : INFINITY;  // +inf: no past blocks, p = 0
        };
        lse0 = merge(mx0, sum0);
        lse1 = merge(mx1, sum1);
        if (!row0_ok) lse0 = INFINITY;
        if (!row1_ok) lse1 = INFINITY;
      }
      // Pass 1 meets the newest tiles first. A list fills with whatever comes first and is then
      // passed only by better candidates, so the order sets how many insertions a row costs: the
      // count above in random order, up to n when the importance grows along the walk, as it does
      // oldest first when recent blocks matter most (local attention).
      auto tile_at = [&](int step) { return pass == 1 ? tiles - 1 - step : step; };
      load_tile(0, tile_at(0));
      cp_async_commit();
      for (int step = 0; step < tiles; ++step) {
        if (step + 1 < tiles) load_tile((step + 1) & 1, tile_at(step + 1));
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();

        const int jt = tile_at(step);
        const __nv_bfloat16* tile_hi = kb + ((step & 1) * 2 + 0) * kTileBlocks * STRIDE;
        const __nv_bfloat16* tile_lo = kb + ((step & 1) * 2 + 1) * kTileBlocks * STRIDE;
        // Column j is a candidate of a row when j < its limit: the row's current block, or
        // unbounded when the whole tile lies in the past of every row of the warp; -1 for padding.
        const bool whole = (jt + 1) * kTileBlocks <= warp_past;
        const bool plain = whole && jt * kTileBlocks >= warp_first;
        const int lim0 = row0_ok ? (whole ? INT_MAX : past0) : -1;
        const int lim1 = row1_ok ? (whole ? INT_MAX : past1) : -1;
        const int token_lim = t0 < p.T ? (whole ? INT_MAX : past0) : -1;

        // 16 columns at a time: scores, then their statistics or their candidates, so that only
        // 8 accumulators are live.
        auto process = [&](auto plain_tag) {
          constexpr bool kPlain = decltype(plain_tag)::value;
#pragma unroll
          for (int np = 0; np < kTileBlocks / 16; ++np) {
            float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
            for (int ks = 0; ks < KS; ++ks) {
              uint32_t bh[4], bl[4];
              ldmatrix_x4(bh, tile_hi + (np * 16 + ld_row) * STRIDE + ks * 16 + ld_col);
              ldmatrix_x4(bl, tile_lo + (np * 16 + ld_row) * STRIDE + ks * 16 + ld_col);
              mma_bf16(s[0], qa[ks], bh[0], bh[1]);
              mma_bf16(s[1], qa[ks], bh[2], bh[3]);
              mma_bf16(s[0], qa[ks], bl[0], bl[1]);
              mma_bf16(s[1], qa[ks], bl[2], bl[3]);
            }
            const int j_base = jt * kTileBlocks + np * 16 + 2 * c;
            auto candidate = [&](int j, bool upper) {
              if (kPlain) return upper ? row1_ok : row0_ok;
              return j < (upper ? lim1 : lim0) && j >= (upper ? first1 : first0);
            };

            if (kGroup && pass == 0) {
              float tmax0 = -INFINITY, tmax1 = -INFINITY;
#pragma unroll
              for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                  const bool upper = e >= 2;
                  if (!kPlain && !candidate(j_base + nt * 8 + (e & 1), upper)) s[nt][e] = -INFINITY;
                  if (upper) tmax1 = fmaxf(tmax1, s[nt][e]);
                  else tmax0 = fmaxf(tmax0, s[nt][e]);
                }
              }
              // The running max moves rarely after the first tiles: rescale only then.
              if (tmax0 > mx0) {
                sum0 *= fast_exp2((mx0 - tmax0) * scale);
                mx0 = tmax0;
              }
              if (tmax1 > mx1) {
                sum1 *= fast_exp2((mx1 - tmax1) * scale);
                mx1 = tmax1;
              }
              const float base0 = mx0 * scale, base1 = mx1 * scale;
#pragma unroll
              for (int nt = 0; nt < 2; ++nt) {
                // exp2(-inf) = 0 for masked columns; rows whose max is still -inf add nothing.
                if (kPlain || mx0 > -INFINITY) {
                  sum0 += fast_exp2(fmaf(s[nt][0], scale, -base0)) + fast_exp2(fmaf(s[nt][1], scale, -base0));
                }
                if (kPlain || mx1 > -INFINITY) {
                  sum1 += fast_exp2(fmaf(s[nt][2], scale, -base1)) + fast_exp2(fmaf(s[nt][3], scale, -base1));
                }
              }
            } else if (by_token) {
              // Importance of (token, block) for the two columns this lane holds in each n-tile:
              // p of the lane's two rows (heads) added here, the other heads' below.
              float sums[2][2];
#pragma unroll
              for (int nt = 0; nt < 2; ++nt) {
                const int j0 = j_base + nt * 8;
#pragma unroll
                for (int x = 0; x < 2; ++x) {
                  float v = 0.f;
#pragma unroll
                  for (int upper = 0; upper < 2; ++upper) {
                    // Padding rows have lse +inf, hence p = 0, on plain tiles.
                    const float p_value = fast_exp2(fmaf(s[nt][2 * upper + x], scale, -(upper ? lse1 : lse0)));
                    v += kPlain || candidate(j0 + x, upper) ? p_value : 0.f;
                  }
                  sums[nt][x] = v;
                }
              }
              // Candidates of the token lie in past blocks of it (row 0's past; the sums cover the
              // token's real heads only). token_lim: its current block (rows of padding heads share
              // the token), first0: its document's first block (rows g and g + 8 hold the same token).
              auto insert_token = [&](bool owned, float v0, float v1, int j0) {
                unsigned pending = 0;
                if (owned && j0 < token_lim && (kPlain || j0 >= first0)) pending |= 1u;
                if (owned && j0 + 1 < token_lim && (kPlain || j0 + 1 >= first0)) pending |= 2u;
                insert_candidates<E>(lv[0], li[0], threshold[0], pending, v0, v1, j0, j0 + 1, grp, m, lane);
              };
              if (reps == 1) {
                insert_token(true, sums[0][0], sums[0][1], j_base);
                insert_token(true, sums[1][0], sums[1][1], j_base + 8);
              } else {
                // The reps lanes holding other heads of the token differ in the lane bits from
                // 4 TQw up; the lowest of them picks the n-tile a lane sums (a reduce-scatter: each
                // lane sends the other n-tile's sums), the others add across all. Each n-tile's
                // candidates then belong to one replica: (np * 2 + nt) mod reps.
                const int nt = my_replica & 1;
                const bool second = nt == 1;  // selects, not an index: sums stays in registers
                float v0 = (second ? sums[1][0] : sums[0][0]) +
                           __shfl_xor_sync(kFullMask, second ? sums[0][0] : sums[1][0], 4 * TQw);
                float v1 = (second ? sums[1][1] : sums[0][1]) +
                           __shfl_xor_sync(kFullMask, second ? sums[0][1] : sums[1][1], 4 * TQw);
#pragma unroll
                for (int offset = 8; offset < 32; offset *= 2) {
                  if (offset >= 8 * TQw) {
                    v0 += __shfl_xor_sync(kFullMask, v0, offset);
                    v1 += __shfl_xor_sync(kFullMask, v1, offset);
                  }
                }
                insert_token(((np * 2 + nt) & (reps - 1)) == my_replica, v0, v1, j_base + nt * 8);
              }
            } else {
#pragma unroll
              for (int nt = 0; nt < 2; ++nt) {
                // Score of each row's block for this n-tile's two columns.
                const int j0 = j_base + nt * 8;
                unsigned pending0 = 0, pending1 = 0;
                if (candidate(j0, false)) pending0 |= 1u;
                if (candidate(j0 + 1, false)) pending0 |= 2u;
                if (candidate(j0, true)) pending1 |= 1u;
                if (candidate(j0 + 1, true)) pending1 |= 2u;
                insert_candidates<E>(lv[0], li[0], threshold[0], pending0, s[nt][0], s[nt][1], j0, j0 + 1, grp, m,
                                     lane);
                insert_candidates<E>(lv[1], li[1], threshold[1], pending1, s[nt][2], s[nt][3], j0, j0 + 1, grp, m,
                                     lane);
              }
            }
          }
        };
        if (plain) process(std::true_type{});
        else process(std::false_type{});
        __syncthreads();
      }
      cp_async_wait<0>();
    }
  }

  // Write the selection rows: every lane its list entries, member 0 also the current block.
  for (int x = 0; x < (by_token ? 1 : 2); ++x) {
    const int64_t t = x == 0 ? t0 : t1;
    const int head = x == 0 ? h0 : h1;
    if (t >= p.T || (!by_token && head >= G)) continue;
    const int64_t hs = kGroup ? h : static_cast<int64_t>(h) * G + head;
    int32_t* out = selection + ((b * p.T + t) * H_sel + hs) * p.K;
    if (grp.member == 0) out[0] = static_cast<int32_t>(t / Bs);
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const int index = grp.member * E + e;
      if (index < m) out[1 + index] = x == 0 ? li[0][e] : li[1][e];
    }
  }
}

template <int D, bool kGroup, int E>
void launch_select(const __nv_bfloat16* q, const __nv_bfloat16* hi, const __nv_bfloat16* lo, int32_t* selection,
                   const SelectParams& params, int64_t batch, cudaStream_t stream) {
  constexpr int STRIDE = D + 8;
  const size_t smem = sizeof(__nv_bfloat16) * 2 * 2 * kTileBlocks * STRIDE;
  auto kernel = block_select_kernel<D, kGroup, E>;
  SSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  // Registers allow three to five CTAs per SM (select_min_ctas); the default carveout fits fewer.
  SSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                      cudaSharedmemCarveoutMaxShared));
  constexpr int kWarps = select_warps<D, kGroup, E>();
  const int64_t TQ = kWarps * params.TQw;
  const dim3 grid(static_cast<unsigned>((params.T + TQ - 1) / TQ), static_cast<unsigned>(params.Hkv),
                  static_cast<unsigned>(batch));
  kernel<<<grid, kWarps * 32, smem, stream>>>(q, hi, lo, selection, params);
  SSA_CUDA_CHECK_LAUNCH("block_select_kernel");
}

// Entries per lane: the list's m past slots over the lanes of a group (4 per MMA row, or
// 4 x 8 / TQw per token when the heads of a group are summed).
template <int D, bool kGroup>
void dispatch_entries(int per_lane, const __nv_bfloat16* q, const __nv_bfloat16* hi, const __nv_bfloat16* lo,
                      int32_t* selection, const SelectParams& params, int64_t batch, cudaStream_t stream) {
  if (per_lane <= 2) launch_select<D, kGroup, 2>(q, hi, lo, selection, params, batch, stream);
  else if (per_lane <= 4) launch_select<D, kGroup, 4>(q, hi, lo, selection, params, batch, stream);
  else if (per_lane <= 8) launch_select<D, kGroup, 8>(q, hi, lo, selection, params, batch, stream);
  else launch_select<D, kGroup, 16>(q, hi, lo, selection, params, batch, stream);
}

template <int D>
void dispatch_select(bool group, const __nv_bfloat16* q, const __nv_bfloat16* hi, const __nv_bfloat16* lo,
                     int32_t* selection, const SelectParams& params, int64_t batch, cudaStream_t stream) {
  const int lanes = group ? 4 * (8 / params.TQw) : 4;
  const int per_lane = (params.K - 1 + lanes - 1) / lanes;
  if (group) dispatch_entries<D, true>(per_lane, q, hi, lo, selection, params, batch, stream);
  else dispatch_entries<D, false>(per_lane, q, hi, lo, selection, params, batch, stream);
}

void check_shape(const BlockSelectShape& s) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("block_select: " + what); };
  if (s.batch < 1 || s.length < 1) fail("empty input");
  if (s.head_dim != 64 && s.head_dim != 128) fail("head_dim must be 64 or 128");
  if (s.kv_heads < 1 || s.q_heads % s.kv_heads != 0) fail("q_heads must be a multiple of kv_heads");
  if (s.q_heads / s.kv_heads > 16) fail("group size above 16");
  if (s.block_size < 1) fail("block_size must be positive");
  const int64_t blocks = (s.length + s.block_size - 1) / s.block_size;
  if (s.slots < 1 || s.slots > 64 || s.slots > blocks) fail("slots must be in [1, min(64, number of blocks)]");
  if (s.batch > 65535 || s.kv_heads > 65535) fail("batch or kv_heads too large for the grid");
}

}  // namespace

size_t block_select_workspace_bytes(const BlockSelectShape& shape) {
  const size_t n = static_cast<size_t>(shape.batch) * shape.kv_heads * complete_blocks(shape) * shape.head_dim;
  return 2 * n * sizeof(__nv_bfloat16) + 16;
}

void block_select(const __nv_bfloat16* q, const __nv_bfloat16* k, int32_t* selection, void* workspace,
                  const BlockSelectShape& shape, cudaStream_t stream, const int32_t* document_start) {
  check_shape(shape);
  const int64_t nbc = complete_blocks(shape);
  const int D = static_cast<int>(shape.head_dim);
  const size_t n = static_cast<size_t>(shape.batch) * shape.kv_heads * nbc * D;
  auto* hi = static_cast<__nv_bfloat16*>(workspace);
  auto* lo = hi + n;
  if (nbc > 0 && shape.slots > 1) {
    const int64_t total = shape.batch * shape.kv_heads * nbc;
    const int threads = 256;
    const int64_t grid = (total * 32 + threads - 1) / threads;
    block_means_kernel<<<static_cast<unsigned>(grid), threads, 0, stream>>>(
        k, hi, lo, shape.length, static_cast<int>(shape.kv_heads), D, static_cast<int>(shape.block_size), nbc, total);
    SSA_CUDA_CHECK_LAUNCH("block_means_kernel");
  }
  const int G = static_cast<int>(shape.q_heads / shape.kv_heads);
  int Gp = 1;
  while (Gp < G) Gp *= 2;
  SelectParams params{};
  params.T = shape.length;
  params.Hq = static_cast<int>(shape.q_heads);
  params.Hkv = static_cast<int>(shape.kv_heads);
  params.G = G;
  params.TQw = 16 / Gp;
  params.Bs = static_cast<int>(shape.block_size);
  params.num_complete = nbc;
  params.K = static_cast<int>(shape.slots);
  params.scale_log2 = static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(D)));
  params.document_start = document_start;
  // With one head per group, softmax over blocks is monotonic in the score: the top-k of the raw
  // scores (the one-pass `head` kernel) is the top-k of the importance.
  const bool summed = shape.group && G >= 2;
  if (D == 64) dispatch_select<64>(summed, q, hi, lo, selection, params, shape.batch, stream);
  else dispatch_select<128>(summed, q, hi, lo, selection, params, shape.batch, stream);
}

}  // namespace ssa::kernels
