#include "cross_entropy.h"

#include <cmath>
#include <stdexcept>

#include "cuda_check.h"
#include "vector_bf16.cuh"

namespace ssa::kernels {
namespace {

constexpr int kThreads = 512;

// (max, sum of exp(x - max)) pairs merged; an empty side has max -inf and sum 0.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  if (m2 == -INFINITY) return;
  if (m == -INFINITY) {
    m = m2, s = s2;
    return;
  }
  const float top = fmaxf(m, m2);
  s = s * __expf(m - top) + s2 * __expf(m2 - top);
  m = top;
}

__device__ __forceinline__ void add_values(float& m, float& s, const float* x, int n) {
  float local = x[0];
  for (int j = 1; j < n; ++j) local = fmaxf(local, x[j]);
  if (local > m) {
    s = m == -INFINITY ? 0.0f : s * __expf(m - local);
    m = local;
  }
  for (int j = 0; j < n; ++j) s += __expf(x[j] - m);
}

// One CTA per row. kVector: vocab is a multiple of 8, so rows are 16-byte aligned.
template <bool kVector>
__global__ void cross_entropy_kernel(__nv_bfloat16* logits, const int64_t* __restrict__ targets,
                                     float* __restrict__ row_loss, int64_t vocab, int64_t ignore_index,
                                     bool write_gradient) {
  __shared__ float warp_max[kThreads / 32], warp_sum_exp[kThreads / 32];
  __shared__ float shared_lse, shared_picked;
  const int64_t row = blockIdx.x;
  __nv_bfloat16* x = logits + row * vocab;
  const int64_t target = targets[row];
  const bool ignored = target == ignore_index;
  const bool in_range = target >= 0 && target < vocab;
  if (threadIdx.x == 0) shared_picked = in_range ? __bfloat162float(x[target]) : 0.0f;

  float m = -INFINITY, s = 0.0f;
  if (kVector) {
    const int64_t vectors = vocab / kBf16PerVector;
    for (int64_t v = threadIdx.x; v < vectors; v += blockDim.x) {
      float values[kBf16PerVector];
      unpack_bf16_vector(as_vectors(x)[v], values);
      add_values(m, s, values, kBf16PerVector);
    }
  } else {
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
      const float value = __bfloat162float(x[i]);
      add_values(m, s, &value, 1);
    }
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    merge(m, s, __shfl_xor_sync(0xffffffffu, m, offset), __shfl_xor_sync(0xffffffffu, s, offset));
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_max[warp] = m, warp_sum_exp[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float tm = -INFINITY, ts = 0.0f;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) merge(tm, ts, warp_max[w], warp_sum_exp[w]);
    const float lse = tm + __logf(ts);
    shared_lse = lse;
    row_loss[row] = ignored ? 0.0f : (in_range ? lse - shared_picked : NAN);
  }
  __syncthreads();  // the row is overwritten below: every read of it (and of x[target]) is done
  if (!write_gradient) return;
  const float lse = shared_lse;
  const auto gradient = [&](int64_t column, float value) {
    return ignored ? 0.0f : __expf(value - lse) - (column == target ? 1.0f : 0.0f);
  };
  if (kVector) {
    const int64_t vectors = vocab / kBf16PerVector;
    for (int64_t v = threadIdx.x; v < vectors; v += blockDim.x) {
      float values[kBf16PerVector];
      unpack_bf16_vector(as_vectors(x)[v], values);
#pragma unroll
      for (int j = 0; j < kBf16PerVector; ++j) values[j] = gradient(v * kBf16PerVector + j, values[j]);
      as_vectors(x)[v] = pack_bf16_vector<uint4>(values);
    }
  } else {
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
      x[i] = __float2bfloat16(gradient(i, __bfloat162float(x[i])));
    }
  }
}

}  // namespace

void cross_entropy_rows(__nv_bfloat16* logits, const int64_t* targets, float* row_loss, int64_t rows, int64_t vocab,
                        int64_t ignore_index, bool write_gradient, cudaStream_t stream) {
  if (rows < 0 || vocab <= 0) throw std::invalid_argument("cross_entropy_rows: need rows >= 0 and vocab > 0");
  if (rows == 0) return;
  if (vocab % kBf16PerVector == 0) {
    cross_entropy_kernel<true><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        logits, targets, row_loss, vocab, ignore_index, write_gradient);
  } else {
    cross_entropy_kernel<false><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        logits, targets, row_loss, vocab, ignore_index, write_gradient);
  }
  SSA_CUDA_CHECK_LAUNCH("cross_entropy_kernel");
}

}  // namespace ssa::kernels
