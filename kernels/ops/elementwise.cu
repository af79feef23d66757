// CUDA element-wise add (the residual add); see elementwise.hpp. Mirrors add_ref and is
// tested against it (tests/kernels/ops_test.cpp).
#include "kernels/ops/elementwise.hpp"

#include "kernels/cuda/launch.cuh"

#include <cuda_runtime_api.h>

namespace comb::kernels {

namespace {

__global__ void add_kernel(const float* a, const float* b, int64_t n, float* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = a[i] + b[i];
}

} // namespace

int add_cuda(const float* a, const float* b, int64_t n, float* y, cuda_stream s) {
  add_kernel<<<cuda::detail::grid_for(n, 256), 256, 0, s>>>(a, b, n, y);
  return cudaGetLastError();
}

} // namespace comb::kernels
