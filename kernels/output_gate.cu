#include "output_gate.h"

#include <stdexcept>
#include <string>

#include "elementwise_bf16.cuh"

namespace ssa::kernels {
namespace {

// Element-wise gate: (o, g, dy) per element, through the shared elementwise loop.
struct ElementwiseGateForward {
  __device__ void operator()(float o, float g, float, float& y, float&) const { y = o * sigmoid(g); }
};

struct ElementwiseGateBackward {
  __device__ void operator()(float o, float g, float dy, float& d_o, float& dg) const {
    const float s = sigmoid(g);
    d_o = dy * s;
    dg = dy * o * s * (1.0f - s);
  }
};

// Head-wise gate: each row of D values is D / 8 consecutive lanes of one warp, one 8-value vector
// each (D / 8 a power of two, so a warp holds whole rows); the backward's sum over the row is an
// xor-shuffle reduction inside that lane group. Grid-stride over warp-sized chunks of vectors, so
// that every lane of a warp takes part in the shuffles of every iteration.
template <bool kBackward>
__global__ void headwise_gate_kernel(const __nv_bfloat16* __restrict__ o, const __nv_bfloat16* __restrict__ g,
                                     const __nv_bfloat16* __restrict__ dy, __nv_bfloat16* __restrict__ out,
                                     __nv_bfloat16* __restrict__ dg, int64_t rows, int lanes_per_row) {
  const int64_t vectors = rows * lanes_per_row;
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  for (int64_t base = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32 * 32; base < vectors;
       base += warps * 32) {
    const int64_t i = base + lane;
    const bool valid = i < vectors;
    const int64_t row = i / lanes_per_row;
    const float s = valid ? sigmoid(__bfloat162float(g[row])) : 0.0f;
    float x[8], r[8];
    float dot = 0.0f;
    if (valid) {
      unpack_bf16_vector(as_vectors(o)[i], x);
      if (kBackward) {
        float d[8];
        unpack_bf16_vector(as_vectors(dy)[i], d);
#pragma unroll
        for (int j = 0; j < kBf16PerVector; ++j) {
          dot += d[j] * x[j];
          r[j] = d[j] * s;
        }
      } else {
#pragma unroll
        for (int j = 0; j < kBf16PerVector; ++j) r[j] = x[j] * s;
      }
      as_vectors(out)[i] = pack_bf16_vector<uint4>(r);
    }
    if (kBackward) {
      for (int offset = lanes_per_row / 2; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
      if (valid && i % lanes_per_row == 0) dg[row] = __float2bfloat16(dot * s * (1.0f - s));
    }
  }
}

template <bool kBackward>
void launch_headwise(const __nv_bfloat16* o, const __nv_bfloat16* g, const __nv_bfloat16* dy, __nv_bfloat16* out,
                     __nv_bfloat16* dg, const OutputGateShape& shape, cudaStream_t stream) {
  const int lanes_per_row = static_cast<int>(shape.head_dim / kBf16PerVector);
  const int64_t vectors = shape.rows * lanes_per_row;
  const int64_t ctas = std::min<int64_t>((vectors + kElementwiseThreads - 1) / kElementwiseThreads,
                                         static_cast<int64_t>(multiprocessor_count()) * 16);
  headwise_gate_kernel<kBackward><<<static_cast<unsigned>(ctas), kElementwiseThreads, 0, stream>>>(
      o, g, dy, out, dg, shape.rows, lanes_per_row);
  SSA_CUDA_CHECK_LAUNCH("headwise_gate_kernel");
}

void check_shape(const OutputGateShape& shape) {
  if (!output_gate_supports(shape)) {
    throw std::invalid_argument("output_gate: unsupported shape (rows " + std::to_string(shape.rows) +
                                ", head_dim " + std::to_string(shape.head_dim) + ")");
  }
}

}  // namespace

bool output_gate_supports(const OutputGateShape& shape) {
  if (shape.rows < 0 || shape.head_dim < 1) return false;
  if (shape.elementwise) return true;
  const int64_t lanes = shape.head_dim / kBf16PerVector;
  return shape.head_dim % kBf16PerVector == 0 && lanes <= 32 && (lanes & (lanes - 1)) == 0;
}

void output_gate_forward(const __nv_bfloat16* o, const __nv_bfloat16* g, __nv_bfloat16* y,
                         const OutputGateShape& shape, cudaStream_t stream) {
  check_shape(shape);
  if (shape.rows == 0) return;
  if (shape.elementwise) {
    launch_binary_elementwise<ElementwiseGateForward>(o, g, nullptr, y, nullptr, shape.rows * shape.head_dim, stream);
  } else {
    launch_headwise<false>(o, g, nullptr, y, nullptr, shape, stream);
  }
}

void output_gate_backward(const __nv_bfloat16* o, const __nv_bfloat16* g, const __nv_bfloat16* grad_y,
                          __nv_bfloat16* grad_o, __nv_bfloat16* grad_g, const OutputGateShape& shape,
                          cudaStream_t stream) {
  check_shape(shape);
  if (shape.rows == 0) return;
  if (shape.elementwise) {
    launch_binary_elementwise<ElementwiseGateBackward>(o, g, grad_y, grad_o, grad_g, shape.rows * shape.head_dim,
                                                       stream);
  } else {
    launch_headwise<true>(o, g, grad_y, grad_o, grad_g, shape, stream);
  }
}

}  // namespace ssa::kernels
