#include "rope.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda_check.h"
#include "vector_bf16.cuh"

namespace ssa::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kPairsPerThread = 4;  // (i, i + D/2) pairs: one 8-byte load from each half

// Thread: 4 pairs of one (token, head). The forward and the backward differ in which sine
// half multiplies which term and in its sign (see rope.h).
template <bool kBackward>
__global__ void rope_kernel(const __nv_bfloat16* __restrict__ x, const float* __restrict__ cos,
                            const float* __restrict__ sin, __nv_bfloat16* __restrict__ y, int64_t tokens,
                            int heads, int head_dim) {
  const int half = head_dim / 2, groups = half / kPairsPerThread;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= tokens * heads * groups) return;
  const int group = static_cast<int>(item % groups);
  const int64_t row = item / groups;  // token * heads + head
  const int64_t token = row / heads;
  const int i = group * kPairsPerThread;
  const __nv_bfloat16* xr = x + row * head_dim;
  __nv_bfloat16* yr = y + row * head_dim;
  const float* c = cos + token * head_dim;
  const float* s = sin + token * head_dim;
  float lo[4], hi[4], out_lo[4], out_hi[4];
  unpack_bf16_vector(*reinterpret_cast<const uint2*>(xr + i), lo);
  unpack_bf16_vector(*reinterpret_cast<const uint2*>(xr + i + half), hi);
  const float4 c_lo = *reinterpret_cast<const float4*>(c + i), c_hi = *reinterpret_cast<const float4*>(c + i + half);
  const float4 s_lo = *reinterpret_cast<const float4*>(s + i), s_hi = *reinterpret_cast<const float4*>(s + i + half);
  const float cl[4] = {c_lo.x, c_lo.y, c_lo.z, c_lo.w}, ch[4] = {c_hi.x, c_hi.y, c_hi.z, c_hi.w};
  const float sl[4] = {s_lo.x, s_lo.y, s_lo.z, s_lo.w}, sh[4] = {s_hi.x, s_hi.y, s_hi.z, s_hi.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if (kBackward) {
      out_lo[j] = lo[j] * cl[j] + hi[j] * sh[j];
      out_hi[j] = hi[j] * ch[j] - lo[j] * sl[j];
    } else {
      out_lo[j] = lo[j] * cl[j] - hi[j] * sl[j];
      out_hi[j] = hi[j] * ch[j] + lo[j] * sh[j];
    }
  }
  *reinterpret_cast<uint2*>(yr + i) = pack_bf16_vector<uint2>(out_lo);
  *reinterpret_cast<uint2*>(yr + i + half) = pack_bf16_vector<uint2>(out_hi);
}

}  // namespace

void check_rope_shape(const RopeShape& shape) {
  if (shape.batch < 0 || shape.length < 0 || shape.heads < 0) throw std::invalid_argument("rope: negative size");
  if (shape.head_dim <= 0 || shape.head_dim % (2 * kPairsPerThread) != 0) {
    throw std::invalid_argument("rope: the head dimension must be a positive multiple of 8, got " +
                                std::to_string(shape.head_dim));
  }
}

void rope_apply(const __nv_bfloat16* x, const float* cos, const float* sin, __nv_bfloat16* y,
                const RopeShape& shape, bool backward, cudaStream_t stream) {
  check_rope_shape(shape);
  const int64_t tokens = shape.batch * shape.length;
  const int64_t items = tokens * shape.heads * (shape.head_dim / 2 / kPairsPerThread);
  if (items == 0) return;
  const auto ctas = static_cast<unsigned>((items + kThreads - 1) / kThreads);
  const int heads = static_cast<int>(shape.heads), dim = static_cast<int>(shape.head_dim);
  if (backward) {
    rope_kernel<true><<<ctas, kThreads, 0, stream>>>(x, cos, sin, y, tokens, heads, dim);
  } else {
    rope_kernel<false><<<ctas, kThreads, 0, stream>>>(x, cos, sin, y, tokens, heads, dim);
  }
  SSA_CUDA_CHECK_LAUNCH("rope_kernel");
}

}  // namespace ssa::kernels
