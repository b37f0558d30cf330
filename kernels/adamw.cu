// AdamW over a list of tensors, see adamw.h. Memory bound: per element it reads p, m, v and g and
// writes p, m, v and the bf16 copy. Each launch takes up to kMaxTensors tensors in its parameter
// block; a CTA walks chunks of kChunk elements, grid-stride, and finds its tensor from the
// chunks' prefix sums. Chunks start at multiples of kChunk, so a tensor whose pointers are aligned
// takes 16-byte loads and stores throughout; others take the scalar loop.
#include "adamw.h"

#include <algorithm>
#include <cstdint>

#include "cuda_check.h"
#include "device_query.h"
#include "vector_bf16.cuh"

namespace ssa::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kVec = 4;
constexpr int kUnroll = 4;  // float4 groups per thread in flight
constexpr int64_t kChunk = static_cast<int64_t>(kThreads) * kVec * kUnroll;
constexpr int kMaxTensors = 40;  // keeps the parameter block under the 4 KB of every architecture
constexpr int kCtasPerMultiprocessor = 8;

struct AdamWBatch {
  AdamWTensor tensors[kMaxTensors];
  int64_t chunk_end[kMaxTensors];  // chunks of tensors [0, i]
  int count;
};

__device__ __forceinline__ void update(float& p, float& m, float& v, float g, bool decays, const AdamWScalars& s) {
  g *= s.grad_scale;
  if (decays) p *= s.decay_factor;
  m = m * s.beta1 + s.one_minus_beta1 * g;
  v = v * s.beta2 + s.one_minus_beta2 * g * g;
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bias2_sqrt), s.eps);
  p = p - s.step_size * __fdiv_rn(m, denom);
}

__device__ __forceinline__ float load_grad(const AdamWTensor& t, int64_t i) {
  return t.grad_bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(t.grad)[i])
                     : static_cast<const float*>(t.grad)[i];
}

__device__ __forceinline__ bool vector_aligned(const AdamWTensor& t) {
  const auto address = [](const void* x) { return reinterpret_cast<std::uintptr_t>(x); };
  const bool state = ((address(t.param) | address(t.exp_avg) | address(t.exp_avg_sq)) % 16) == 0;
  const bool grad = address(t.grad) % (t.grad_bf16 ? 8 : 16) == 0;
  return state && grad && address(t.compute_copy) % 8 == 0;
}

__device__ __forceinline__ void update_element(const AdamWTensor& t, int64_t i, const AdamWScalars& s) {
  float p = t.param[i], m = t.exp_avg[i], v = t.exp_avg_sq[i];
  update(p, m, v, load_grad(t, i), t.decays, s);
  t.param[i] = p;
  t.exp_avg[i] = m;
  t.exp_avg_sq[i] = v;
  if (t.compute_copy != nullptr) t.compute_copy[i] = __float2bfloat16_rn(p);
}

__device__ void update_scalar(const AdamWTensor& t, int64_t begin, int64_t end, const AdamWScalars& s) {
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) update_element(t, i, s);
}

// All loads of the chunk first, then the arithmetic and the stores: the compiler cannot move a
// load above a store to a pointer it may alias.
__device__ void update_vector(const AdamWTensor& t, int64_t begin, int64_t end, const AdamWScalars& s) {
  float4 p[kUnroll], m[kUnroll], v[kUnroll], g[kUnroll];
  bool full[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t i = begin + (static_cast<int64_t>(u) * kThreads + threadIdx.x) * kVec;
    full[u] = i + kVec <= end;
    if (!full[u]) continue;
    p[u] = *reinterpret_cast<const float4*>(t.param + i);
    m[u] = *reinterpret_cast<const float4*>(t.exp_avg + i);
    v[u] = *reinterpret_cast<const float4*>(t.exp_avg_sq + i);
    if (t.grad_bf16) {
      const uint2 raw = *reinterpret_cast<const uint2*>(static_cast<const __nv_bfloat16*>(t.grad) + i);
      float unpacked[kVec];
      unpack_bf16_vector(raw, unpacked);
      g[u] = make_float4(unpacked[0], unpacked[1], unpacked[2], unpacked[3]);
    } else {
      g[u] = *reinterpret_cast<const float4*>(static_cast<const float*>(t.grad) + i);
    }
  }
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t i = begin + (static_cast<int64_t>(u) * kThreads + threadIdx.x) * kVec;
    if (!full[u]) {
      for (int64_t j = i; j < end && j < i + kVec; ++j) update_element(t, j, s);  // the tensor's last partial group
      continue;
    }
    update(p[u].x, m[u].x, v[u].x, g[u].x, t.decays, s);
    update(p[u].y, m[u].y, v[u].y, g[u].y, t.decays, s);
    update(p[u].z, m[u].z, v[u].z, g[u].z, t.decays, s);
    update(p[u].w, m[u].w, v[u].w, g[u].w, t.decays, s);
    *reinterpret_cast<float4*>(t.param + i) = p[u];
    *reinterpret_cast<float4*>(t.exp_avg + i) = m[u];
    *reinterpret_cast<float4*>(t.exp_avg_sq + i) = v[u];
    if (t.compute_copy != nullptr) {
      const float updated[kVec] = {p[u].x, p[u].y, p[u].z, p[u].w};
      *reinterpret_cast<uint2*>(t.compute_copy + i) = pack_bf16_vector<uint2>(updated);
    }
  }
}

__global__ void __launch_bounds__(kThreads) adamw_kernel(const __grid_constant__ AdamWBatch batch, AdamWScalars s) {
  const int64_t total = batch.chunk_end[batch.count - 1];
  int tensor = 0;
  for (int64_t chunk = blockIdx.x; chunk < total; chunk += gridDim.x) {
    while (chunk >= batch.chunk_end[tensor]) ++tensor;
    const AdamWTensor& t = batch.tensors[tensor];
    const int64_t begin = (chunk - (tensor == 0 ? 0 : batch.chunk_end[tensor - 1])) * kChunk;
    const int64_t end = std::min(begin + kChunk, t.numel);
    if (vector_aligned(t)) {
      update_vector(t, begin, end, s);
    } else {
      update_scalar(t, begin, end, s);
    }
  }
}

}  // namespace

void adamw_update(const AdamWTensor* tensors, int64_t count, const AdamWScalars& scalars, cudaStream_t stream) {
  const int64_t max_grid = static_cast<int64_t>(multiprocessor_count()) * kCtasPerMultiprocessor;
  AdamWBatch batch{};
  const auto launch = [&] {
    if (batch.count == 0) return;
    const int64_t grid = std::min(batch.chunk_end[batch.count - 1], max_grid);
    adamw_kernel<<<static_cast<unsigned>(grid), kThreads, 0, stream>>>(batch, scalars);
    SSA_CUDA_CHECK_LAUNCH("adamw_kernel");
    batch.count = 0;
  };
  for (int64_t i = 0; i < count; ++i) {
    if (tensors[i].numel == 0) continue;
    const int64_t before = batch.count == 0 ? 0 : batch.chunk_end[batch.count - 1];
    batch.tensors[batch.count] = tensors[i];
    batch.chunk_end[batch.count] = before + (tensors[i].numel + kChunk - 1) / kChunk;
    if (++batch.count == kMaxTensors) launch();
  }
  launch();
}

}  // namespace ssa::kernels
