// Vectorised bf16 loads and stores for the memory-bound kernels (RMSNorm, SwiGLU, RoPE, cross
// entropy): 16-byte (8 x bf16) and 8-byte (4 x bf16) vectors unpacked into float32 registers, and a
// warp sum.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace ssa::kernels {

constexpr int kBf16PerVector = 8;  // bf16 values in one uint4

// N bf16 values packed in a vector type of 2N bytes (uint4: 8, uint2: 4) to and from float32.
template <typename Vector, int N>
__device__ __forceinline__ void unpack_bf16_vector(const Vector& v, float (&out)[N]) {
  static_assert(sizeof(Vector) == 2 * N, "one bf16 per 2 bytes of the vector");
  const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) {
    const float2 f = __bfloat1622float2(pairs[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

template <typename Vector, int N>
__device__ __forceinline__ Vector pack_bf16_vector(const float (&in)[N]) {
  static_assert(sizeof(Vector) == 2 * N, "one bf16 per 2 bytes of the vector");
  Vector v;
  auto* pairs = reinterpret_cast<__nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) pairs[i] = __floats2bfloat162_rn(in[2 * i], in[2 * i + 1]);
  return v;
}

// x rounded to the nearest bf16, as a float (what a bf16 tensor op would have stored).
__device__ __forceinline__ float round_bf16(float x) { return __bfloat162float(__float2bfloat16(x)); }

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__host__ __device__ inline const uint4* as_vectors(const __nv_bfloat16* p) { return reinterpret_cast<const uint4*>(p); }
__host__ __device__ inline uint4* as_vectors(__nv_bfloat16* p) { return reinterpret_cast<uint4*>(p); }

}  // namespace ssa::kernels
