#include "alignment_loss.h"

#include <algorithm>
#include <stdexcept>

#include "cuda_check.h"
#include "device_query.h"
#include "vector_bf16.cuh"

namespace ssa::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kCtasPerSm = 4;

__device__ __forceinline__ float distance(float x, bool smooth_l1, float beta) {
  if (!smooth_l1) return x * x;
  const float a = fabsf(x);
  return a < beta ? 0.5f * x * x / beta : a - 0.5f * beta;
}

__device__ __forceinline__ float distance_derivative(float x, bool smooth_l1, float beta) {
  if (!smooth_l1) return 2.0f * x;
  return fabsf(x) < beta ? x / beta : copysignf(1.0f, x);
}

// Grid-stride over 8-value vectors and then the tail; one partial sum per CTA.
__global__ void alignment_forward_kernel(const __nv_bfloat16* __restrict__ full,
                                         const __nv_bfloat16* __restrict__ sparse, float* __restrict__ partial,
                                         int64_t count, bool smooth_l1, float beta) {
  __shared__ float warp_sums[kThreads / 32];
  const int64_t vectors = count / kBf16PerVector;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  float sum = 0.0f;
  for (int64_t i = first; i < vectors; i += stride) {
    float f[8], s[8];
    unpack_bf16_vector(as_vectors(full)[i], f);
    unpack_bf16_vector(as_vectors(sparse)[i], s);
#pragma unroll
    for (int j = 0; j < kBf16PerVector; ++j) sum += distance(f[j] - s[j], smooth_l1, beta);
  }
  for (int64_t i = vectors * kBf16PerVector + first; i < count; i += stride) {
    sum += distance(__bfloat162float(full[i]) - __bfloat162float(sparse[i]), smooth_l1, beta);
  }
  sum = warp_sum(sum);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
    partial[blockIdx.x] = total;
  }
}

// One warp: the partial sums in a fixed order, scaled.
__global__ void sum_partials_kernel(const float* __restrict__ partial, int partials, float scale,
                                    float* __restrict__ loss) {
  float sum = 0.0f;
  for (int i = threadIdx.x; i < partials; i += 32) sum += partial[i];
  sum = warp_sum(sum);
  if (threadIdx.x == 0) *loss = sum * scale;
}

__global__ void alignment_backward_kernel(const __nv_bfloat16* __restrict__ full,
                                          const __nv_bfloat16* __restrict__ sparse,
                                          const float* __restrict__ grad_loss, float full_scale, float sparse_scale,
                                          __nv_bfloat16* __restrict__ grad_full,
                                          __nv_bfloat16* __restrict__ grad_sparse, int64_t count, bool smooth_l1,
                                          float beta) {
  const float g = *grad_loss;
  const float to_full = g * full_scale, to_sparse = -g * sparse_scale;
  const int64_t vectors = count / kBf16PerVector;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t i = first; i < vectors; i += stride) {
    float f[8], s[8], df[8], ds[8];
    unpack_bf16_vector(as_vectors(full)[i], f);
    unpack_bf16_vector(as_vectors(sparse)[i], s);
#pragma unroll
    for (int j = 0; j < kBf16PerVector; ++j) {
      const float d = distance_derivative(f[j] - s[j], smooth_l1, beta);
      df[j] = to_full * d;
      ds[j] = to_sparse * d;
    }
    if (grad_full) as_vectors(grad_full)[i] = pack_bf16_vector<uint4>(df);
    if (grad_sparse) as_vectors(grad_sparse)[i] = pack_bf16_vector<uint4>(ds);
  }
  for (int64_t i = vectors * kBf16PerVector + first; i < count; i += stride) {
    const float d = distance_derivative(__bfloat162float(full[i]) - __bfloat162float(sparse[i]), smooth_l1, beta);
    if (grad_full) grad_full[i] = __float2bfloat16(to_full * d);
    if (grad_sparse) grad_sparse[i] = __float2bfloat16(to_sparse * d);
  }
}

void check_shape(const AlignmentLossShape& shape) {
  if (shape.count < 0) throw std::invalid_argument("alignment_loss: negative element count");
  if (shape.smooth_l1 && !(shape.beta > 0.0f)) throw std::invalid_argument("alignment_loss: beta must be positive");
}

int grid_for(int64_t count) {
  const int sms = multiprocessor_count();
  const int64_t vectors = std::max<int64_t>(1, count / kBf16PerVector);
  return static_cast<int>(std::min<int64_t>((vectors + kThreads - 1) / kThreads, static_cast<int64_t>(sms) * kCtasPerSm));
}

}  // namespace

size_t alignment_loss_forward_workspace_bytes(const AlignmentLossShape& shape) {
  check_shape(shape);
  return static_cast<size_t>(grid_for(shape.count)) * sizeof(float);
}

void alignment_loss_forward(const __nv_bfloat16* full, const __nv_bfloat16* sparse, float* loss, float scale,
                            void* workspace, const AlignmentLossShape& shape, cudaStream_t stream) {
  check_shape(shape);
  const int ctas = grid_for(shape.count);
  auto* partial = static_cast<float*>(workspace);
  alignment_forward_kernel<<<ctas, kThreads, 0, stream>>>(full, sparse, partial, shape.count, shape.smooth_l1,
                                                          shape.beta);
  SSA_CUDA_CHECK_LAUNCH("alignment_forward_kernel");
  sum_partials_kernel<<<1, 32, 0, stream>>>(partial, ctas, scale, loss);
  SSA_CUDA_CHECK_LAUNCH("sum_partials_kernel");
}

void alignment_loss_backward(const __nv_bfloat16* full, const __nv_bfloat16* sparse, const float* grad_loss,
                             float full_scale, float sparse_scale, __nv_bfloat16* grad_full,
                             __nv_bfloat16* grad_sparse, const AlignmentLossShape& shape, cudaStream_t stream) {
  check_shape(shape);
  if (shape.count == 0 || (!grad_full && !grad_sparse)) return;
  alignment_backward_kernel<<<grid_for(shape.count), kThreads, 0, stream>>>(
      full, sparse, grad_loss, full_scale, sparse_scale, grad_full, grad_sparse, shape.count, shape.smooth_l1,
      shape.beta);
  SSA_CUDA_CHECK_LAUNCH("alignment_backward_kernel");
}

}  // namespace ssa::kernels
