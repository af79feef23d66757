// CUDA max over time; see max_over_time.hpp. Mirrors max_over_time_ref and is tested
// against it (tests/kernels/cuda_vision_test.cpp, ops_test.cpp).
#include "kernels/ops/max_over_time.hpp"

#include <cuda_runtime_api.h>

namespace comb::kernels {

namespace {

// First maximum over t < valid (strict >, as the CPU reference); argmax may be nullptr.
__global__ void max_over_time_kernel(const float* x, int batch, int time, int valid, int channels,
                                     float* out, int32_t* argmax) {
  int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= int64_t{batch} * channels)
    return;
  int b = static_cast<int>(i / channels), c = static_cast<int>(i % channels);
  const float* p = x + int64_t{b} * time * channels + c;
  int best = 0;
  float m = p[0];
  for (int t = 1; t < valid; ++t) {
    float v = p[int64_t{t} * channels];
    if (v > m) {
      m = v;
      best = t;
    }
  }
  out[i] = m;
  if (argmax)
    argmax[i] = best;
}

} // namespace

int max_over_time_cuda(const float* x, int batch, int time, int valid, int channels, float* out,
                       int32_t* argmax, cuda_stream s) {
  int64_t total = int64_t{batch} * channels;
  if (total == 0 || valid <= 0)
    return cudaSuccess;
  max_over_time_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, s>>>(x, batch, time,
                                                                                  valid, channels,
                                                                                  out, argmax);
  return cudaGetLastError();
}

} // namespace comb::kernels
