#include "swiglu.h"

#include "elementwise_bf16.cuh"

namespace ssa::kernels {
namespace {

struct SwigluForward {
  __device__ void operator()(float g, float u, float, float& y, float&) const { y = g * sigmoid(g) * u; }
};

struct SwigluBackward {
  __device__ void operator()(float g, float u, float dy, float& dg, float& du) const {
    const float s = sigmoid(g);
    du = dy * g * s;
    dg = dy * u * s * (1.0f + g * (1.0f - s));
  }
};

}  // namespace

void swiglu_forward(const __nv_bfloat16* gate, const __nv_bfloat16* up, __nv_bfloat16* y, int64_t count,
                    cudaStream_t stream) {
  launch_binary_elementwise<SwigluForward>(gate, up, nullptr, y, nullptr, count, stream);
}

void swiglu_backward(const __nv_bfloat16* gate, const __nv_bfloat16* up, const __nv_bfloat16* grad_y,
                     __nv_bfloat16* grad_gate, __nv_bfloat16* grad_up, int64_t count, cudaStream_t stream) {
  launch_binary_elementwise<SwigluBackward>(gate, up, grad_y, grad_gate, grad_up, count, stream);
}

}  // namespace ssa::kernels
