// CUDA bias + clamp (ReLU/ReLU6), in place; see bias_act.hpp. Mirrors bias_act_ref and is
// tested against it (tests/kernels/cuda_vision_test.cpp, ops_test.cpp).
#include "kernels/ops/bias_act.hpp"

#include "kernels/cuda/launch.cuh"

#include <cuda_runtime_api.h>

namespace comb::kernels {

namespace {

__global__ void bias_act_kernel(float* x, const float* bias, int64_t total, int cols, float lo,
                                float hi) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    float v = x[i] + (bias ? bias[i % cols] : 0.0f);
    // fmaxf/fminf would drop NaN; keep it as the CPU reference does.
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    x[i] = v;
  }
}

} // namespace

int bias_act_cuda(float* x, const float* bias, int64_t rows, int cols, float lo, float hi,
                  cuda_stream s) {
  int64_t total = rows * cols;
  bias_act_kernel<<<cuda::detail::grid_for(total, 256), 256, 0, s>>>(x, bias, total, cols, lo, hi);
  return cudaGetLastError();
}

} // namespace comb::kernels
