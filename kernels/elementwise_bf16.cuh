// The grid-stride loop of the elementwise kernels with two bf16 inputs (SwiGLU, the element-wise
// output gate): `Op` maps (a, b, dy) to one or two outputs per element, in float32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "cuda_check.h"
#include "device_query.h"
#include "vector_bf16.cuh"

namespace ssa::kernels {

constexpr int kElementwiseThreads = 256;

// 8-value vectors, then the tail of count % 8 values one by one. `dy` and `second` may be null
// (forward passes): dy reads as 0 and the second output is not written.
template <typename Op>
__global__ void binary_elementwise_kernel(const __nv_bfloat16* __restrict__ a, const __nv_bfloat16* __restrict__ b,
                                          const __nv_bfloat16* __restrict__ dy, __nv_bfloat16* __restrict__ first,
                                          __nv_bfloat16* __restrict__ second, int64_t count) {
  const Op op;
  const int64_t vectors = count / kBf16PerVector;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < vectors; i += stride) {
    float x[8], y[8], d[8] = {}, p[8], q[8];
    unpack_bf16_vector(as_vectors(a)[i], x);
    unpack_bf16_vector(as_vectors(b)[i], y);
    if (dy) unpack_bf16_vector(as_vectors(dy)[i], d);
#pragma unroll
    for (int j = 0; j < kBf16PerVector; ++j) op(x[j], y[j], d[j], p[j], q[j]);
    as_vectors(first)[i] = pack_bf16_vector<uint4>(p);
    if (second) as_vectors(second)[i] = pack_bf16_vector<uint4>(q);
  }
  for (int64_t i = vectors * kBf16PerVector + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < count; i += stride) {
    float p, q;
    op(__bfloat162float(a[i]), __bfloat162float(b[i]), dy ? __bfloat162float(dy[i]) : 0.0f, p, q);
    first[i] = __float2bfloat16(p);
    if (second) second[i] = __float2bfloat16(q);
  }
}

// Enough CTAs to fill every SM several times over; the grid-stride loop takes the rest.
template <typename Op>
void launch_binary_elementwise(const __nv_bfloat16* a, const __nv_bfloat16* b, const __nv_bfloat16* dy,
                               __nv_bfloat16* first, __nv_bfloat16* second, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  const int64_t vectors = std::max<int64_t>(1, count / kBf16PerVector);
  const int64_t ctas = std::min<int64_t>((vectors + kElementwiseThreads - 1) / kElementwiseThreads,
                                         static_cast<int64_t>(multiprocessor_count()) * 16);
  binary_elementwise_kernel<Op><<<static_cast<unsigned>(ctas), kElementwiseThreads, 0, stream>>>(a, b, dy, first,
                                                                                                  second, count);
  SSA_CUDA_CHECK_LAUNCH("binary_elementwise_kernel");
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

}  // namespace ssa::kernels
