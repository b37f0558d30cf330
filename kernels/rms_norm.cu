#include "rms_norm.h"

#include <algorithm>
#include <type_traits>
#include <stdexcept>
#include <string>

#include "cuda_check.h"
#include "device_query.h"
#include "vector_bf16.cuh"

namespace ssa::kernels {
namespace {

constexpr int kMaxThreads = 256;
constexpr int kMaxVectors = static_cast<int>(kRmsNormMaxDim / kBf16PerVector / kMaxThreads);  // per thread
// Backward CTAs per SM: each owns a slice of the rows and one float32 row of dweight partial sums.
constexpr int kBackwardCtasPerSm = 4;

// Sum over the CTA, returned to every thread. `scratch` holds one float per warp.
__device__ float block_sum(float value, float* scratch) {
  value = warp_sum(value);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  __syncthreads();  // scratch may still be read by the previous call
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  return total;
}

// One CTA per row; thread i owns the vectors i, i + blockDim, ... of the row.
template <int kVectors>
__global__ void rms_norm_forward_kernel(const uint4* __restrict__ x, const uint4* __restrict__ weight,
                                        uint4* __restrict__ y, float* __restrict__ rstd, int vectors, float eps,
                                        float inv_dim) {
  __shared__ float scratch[kMaxThreads / 32];
  const int64_t row = blockIdx.x;
  float values[kVectors][kBf16PerVector];
  float squares = 0.0f;
#pragma unroll
  for (int i = 0; i < kVectors; ++i) {
    const int v = threadIdx.x + i * blockDim.x;
    if (v < vectors) {
      unpack_bf16_vector(x[row * vectors + v], values[i]);
#pragma unroll
      for (int j = 0; j < kBf16PerVector; ++j) squares += values[i][j] * values[i][j];
    }
  }
  const float r = rsqrtf(block_sum(squares, scratch) * inv_dim + eps);
#pragma unroll
  for (int i = 0; i < kVectors; ++i) {
    const int v = threadIdx.x + i * blockDim.x;
    if (v < vectors) {
      float w[kBf16PerVector], out[kBf16PerVector];
      unpack_bf16_vector(weight[v], w);
#pragma unroll
      for (int j = 0; j < kBf16PerVector; ++j) out[j] = w[j] * round_bf16(values[i][j] * r);
      y[row * vectors + v] = pack_bf16_vector<uint4>(out);
    }
  }
  if (threadIdx.x == 0) rstd[row] = r;
}

// CTA c takes rows c, c + gridDim, ...; its threads keep their columns' weights and dweight sums
// in registers and write the sums to partial[c] at the end.
template <int kVectors>
__global__ void rms_norm_backward_kernel(const uint4* __restrict__ x, const uint4* __restrict__ weight,
                                         const float* __restrict__ rstd, const uint4* __restrict__ grad_y,
                                         uint4* __restrict__ dx, float* __restrict__ partial, int64_t rows,
                                         int vectors, float inv_dim) {
  __shared__ float scratch[kMaxThreads / 32];
  float w[kVectors][kBf16PerVector], dw[kVectors][kBf16PerVector];
#pragma unroll
  for (int i = 0; i < kVectors; ++i) {
    const int v = threadIdx.x + i * blockDim.x;
#pragma unroll
    for (int j = 0; j < kBf16PerVector; ++j) dw[i][j] = 0.0f, w[i][j] = 0.0f;
    if (v < vectors) unpack_bf16_vector(weight[v], w[i]);
  }
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float r = rstd[row];
    float n[kVectors][kBf16PerVector], dn[kVectors][kBf16PerVector];
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kVectors; ++i) {
      const int v = threadIdx.x + i * blockDim.x;
      if (v < vectors) {
        float dy[kBf16PerVector];
        unpack_bf16_vector(x[row * vectors + v], n[i]);
        unpack_bf16_vector(grad_y[row * vectors + v], dy);
#pragma unroll
        for (int j = 0; j < kBf16PerVector; ++j) {
          n[i][j] *= r;
          dn[i][j] = dy[j] * w[i][j];
          dot += dn[i][j] * n[i][j];
          dw[i][j] += dy[j] * round_bf16(n[i][j]);
        }
      }
    }
    const float mean = block_sum(dot, scratch) * inv_dim;
#pragma unroll
    for (int i = 0; i < kVectors; ++i) {
      const int v = threadIdx.x + i * blockDim.x;
      if (v < vectors) {
        float out[kBf16PerVector];
#pragma unroll
        for (int j = 0; j < kBf16PerVector; ++j) out[j] = r * (dn[i][j] - n[i][j] * mean);
        dx[row * vectors + v] = pack_bf16_vector<uint4>(out);
      }
    }
  }
  const int64_t dim = static_cast<int64_t>(vectors) * kBf16PerVector;
#pragma unroll
  for (int i = 0; i < kVectors; ++i) {
    const int v = threadIdx.x + i * blockDim.x;
    if (v < vectors) {
      float* out = partial + blockIdx.x * dim + static_cast<int64_t>(v) * kBf16PerVector;
#pragma unroll
      for (int j = 0; j < kBf16PerVector; ++j) out[j] = dw[i][j];
    }
  }
}

// dweight[col] = sum over the CTAs' partial rows, in a fixed order (deterministic).
__global__ void sum_partial_rows_kernel(const float* __restrict__ partial, __nv_bfloat16* __restrict__ dweight,
                                        int partial_rows, int64_t dim) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= dim) return;
  float sum = 0.0f;
  for (int p = 0; p < partial_rows; ++p) sum += partial[p * dim + col];
  dweight[col] = __float2bfloat16(sum);
}

int threads_for(int vectors) { return std::min(kMaxThreads, (vectors + 31) / 32 * 32); }

int backward_ctas(int64_t rows) {
  const int sms = multiprocessor_count();
  return static_cast<int>(std::min<int64_t>(rows, static_cast<int64_t>(sms) * kBackwardCtasPerSm));
}

// Calls f.template operator()<V>() with the smallest V in {1, 2, 4} that covers the row.
template <typename F>
void with_vectors_per_thread(int vectors, F&& f) {
  const int per_thread = (vectors + kMaxThreads - 1) / kMaxThreads;
  static_assert(kMaxVectors == 4, "the dispatch below covers 1, 2 and 4 vectors per thread");
  if (per_thread <= 1) {
    f(std::integral_constant<int, 1>{});
  } else if (per_thread <= 2) {
    f(std::integral_constant<int, 2>{});
  } else {
    f(std::integral_constant<int, 4>{});
  }
}

}  // namespace

void check_rms_norm_shape(int64_t rows, int64_t dim) {
  if (rows < 0) throw std::invalid_argument("rms_norm: negative row count");
  if (dim <= 0 || dim > kRmsNormMaxDim || dim % kBf16PerVector != 0) {
    throw std::invalid_argument("rms_norm: the row width must be a multiple of 8 in [8, " +
                                std::to_string(kRmsNormMaxDim) + "], got " + std::to_string(dim));
  }
}

void rms_norm_forward(const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* y, float* rstd,
                      int64_t rows, int64_t dim, float eps, cudaStream_t stream) {
  check_rms_norm_shape(rows, dim);
  if (rows == 0) return;
  const int vectors = static_cast<int>(dim / kBf16PerVector);
  with_vectors_per_thread(vectors, [&](auto per_thread) {
    rms_norm_forward_kernel<decltype(per_thread)::value><<<rows, threads_for(vectors), 0, stream>>>(
        as_vectors(x), as_vectors(weight), as_vectors(y), rstd, vectors, eps, 1.0f / static_cast<float>(dim));
    SSA_CUDA_CHECK_LAUNCH("rms_norm_forward_kernel");
  });
}

size_t rms_norm_backward_workspace_bytes(int64_t rows, int64_t dim) {
  check_rms_norm_shape(rows, dim);
  if (rows == 0) return 0;
  return static_cast<size_t>(backward_ctas(rows)) * static_cast<size_t>(dim) * sizeof(float);
}

void rms_norm_backward(const __nv_bfloat16* x, const __nv_bfloat16* weight, const float* rstd,
                       const __nv_bfloat16* grad_y, __nv_bfloat16* dx, __nv_bfloat16* dweight, void* workspace,
                       int64_t rows, int64_t dim, cudaStream_t stream) {
  check_rms_norm_shape(rows, dim);
  if (rows == 0) {
    SSA_CUDA_CHECK(cudaMemsetAsync(dweight, 0, static_cast<size_t>(dim) * sizeof(__nv_bfloat16), stream));
    return;
  }
  const int vectors = static_cast<int>(dim / kBf16PerVector);
  const int ctas = backward_ctas(rows);
  auto* partial = static_cast<float*>(workspace);
  with_vectors_per_thread(vectors, [&](auto per_thread) {
    rms_norm_backward_kernel<decltype(per_thread)::value><<<ctas, threads_for(vectors), 0, stream>>>(
        as_vectors(x), as_vectors(weight), rstd, as_vectors(grad_y), as_vectors(dx), partial, rows, vectors,
        1.0f / static_cast<float>(dim));
    SSA_CUDA_CHECK_LAUNCH("rms_norm_backward_kernel");
  });
  constexpr int kColumnThreads = 256;
  sum_partial_rows_kernel<<<static_cast<unsigned>((dim + kColumnThreads - 1) / kColumnThreads), kColumnThreads, 0,
                            stream>>>(partial, dweight, ctas, dim);
  SSA_CUDA_CHECK_LAUNCH("sum_partial_rows_kernel");
}

}  // namespace ssa::kernels
