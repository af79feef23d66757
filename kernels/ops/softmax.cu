// CUDA row softmax; see softmax.hpp. Mirrors softmax_ref and is tested against it
// (tests/kernels/cuda_vision_test.cpp, ops_test.cpp).
#include "kernels/ops/softmax.hpp"

#include <cuda_runtime_api.h>

#include <cfloat>

namespace comb::kernels {

namespace {

// One block per row; blockDim.x threads reduce max and sum in shared memory.
__global__ void softmax_kernel(const float* x, int cols, float* out) {
  extern __shared__ float red[];
  const float* row = x + blockIdx.x * int64_t{cols};
  float* orow = out + blockIdx.x * int64_t{cols};
  float m = -FLT_MAX;
  for (int j = threadIdx.x; j < cols; j += blockDim.x)
    m = fmaxf(m, row[j]);
  red[threadIdx.x] = m;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s)
      red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
    __syncthreads();
  }
  m = red[0];
  __syncthreads();
  float sum = 0.0f;
  for (int j = threadIdx.x; j < cols; j += blockDim.x)
    sum += expf(row[j] - m);
  red[threadIdx.x] = sum;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s)
      red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  float inv = 1.0f / red[0];
  for (int j = threadIdx.x; j < cols; j += blockDim.x)
    orow[j] = expf(row[j] - m) * inv;
}

} // namespace

int softmax_cuda(const float* x, int64_t rows, int cols, float* out, cuda_stream s) {
  constexpr int threads = 256;
  if (rows > 2147483647)
    return cudaErrorInvalidValue;
  softmax_kernel<<<static_cast<unsigned>(rows), threads, threads * sizeof(float), s>>>(x, cols,
                                                                                       out);
  return cudaGetLastError();
}

} // namespace comb::kernels
