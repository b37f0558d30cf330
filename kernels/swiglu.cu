#include "swiglu.h"

#include <algorithm>

#include "cuda_check.h"
#include "device_query.h"
#include "vector_bf16.cuh"

namespace ssa::kernels {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + __expf(-g)); }

struct SwigluForward {
  __device__ void operator()(float g, float u, float, float& y, float&) const {
    y = g * sigmoid(g) * u;
  }
};

struct SwigluBackward {
  __device__ void operator()(float g, float u, float dy, float& dg, float& du) const {
    const float s = sigmoid(g);
    du = dy * g * s;
    dg = dy * u * s * (1.0f + g * (1.0f - s));
  }
};

// Grid-stride over 8-value vectors, then the tail of count % 8 values one by one. `dy` and
// `second` are unused (null) in the forward.
template <typename Op>
__global__ void swiglu_kernel(const __nv_bfloat16* __restrict__ gate, const __nv_bfloat16* __restrict__ up,
                              const __nv_bfloat16* __restrict__ dy, __nv_bfloat16* __restrict__ first,
                              __nv_bfloat16* __restrict__ second, int64_t count) {
  const Op op;
  const int64_t vectors = count / kBf16PerVector;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < vectors; i += stride) {
    float g[8], u[8], d[8] = {}, a[8], b[8];
    unpack_bf16_vector(as_vectors(gate)[i], g);
    unpack_bf16_vector(as_vectors(up)[i], u);
    if (dy) unpack_bf16_vector(as_vectors(dy)[i], d);
#pragma unroll
    for (int j = 0; j < kBf16PerVector; ++j) op(g[j], u[j], d[j], a[j], b[j]);
    as_vectors(first)[i] = pack_bf16_vector<uint4>(a);
    if (second) as_vectors(second)[i] = pack_bf16_vector<uint4>(b);
  }
  for (int64_t i = vectors * kBf16PerVector + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < count; i += stride) {
    float a, b;
    op(__bfloat162float(gate[i]), __bfloat162float(up[i]), dy ? __bfloat162float(dy[i]) : 0.0f, a, b);
    first[i] = __float2bfloat16(a);
    if (second) second[i] = __float2bfloat16(b);
  }
}

template <typename Op>
void launch(const __nv_bfloat16* gate, const __nv_bfloat16* up, const __nv_bfloat16* dy, __nv_bfloat16* first,
            __nv_bfloat16* second, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  const int sms = multiprocessor_count();
  const int64_t vectors = std::max<int64_t>(1, count / kBf16PerVector);
  // Enough CTAs to fill every SM several times over; the grid-stride loop takes the rest.
  const int64_t ctas = std::min<int64_t>((vectors + kThreads - 1) / kThreads, static_cast<int64_t>(sms) * 16);
  swiglu_kernel<Op><<<static_cast<unsigned>(ctas), kThreads, 0, stream>>>(gate, up, dy, first, second, count);
  SSA_CUDA_CHECK_LAUNCH("swiglu_kernel");
}

}  // namespace

void swiglu_forward(const __nv_bfloat16* gate, const __nv_bfloat16* up, __nv_bfloat16* y, int64_t count,
                    cudaStream_t stream) {
  launch<SwigluForward>(gate, up, nullptr, y, nullptr, count, stream);
}

void swiglu_backward(const __nv_bfloat16* gate, const __nv_bfloat16* up, const __nv_bfloat16* grad_y,
                     __nv_bfloat16* grad_gate, __nv_bfloat16* grad_up, int64_t count, cudaStream_t stream) {
  launch<SwigluBackward>(gate, up, grad_y, grad_gate, grad_up, count, stream);
}

}  // namespace ssa::kernels
