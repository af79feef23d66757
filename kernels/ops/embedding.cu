// CUDA embedding lookup; see embedding.hpp. Mirrors embedding_ref and is tested against it
// (tests/kernels/cuda_vision_test.cpp, ops_test.cpp).
#include "kernels/ops/embedding.hpp"

#include "kernels/cuda/launch.cuh"

#include <cuda_runtime_api.h>

namespace comb::kernels {

namespace {

__global__ void embedding_kernel(const int32_t* ids, int64_t n, const float* table, int vocab,
                                 int dim, float* out, int* bad) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n * dim;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t r = i / dim;
    int d = static_cast<int>(i % dim);
    int32_t id = ids[r];
    if (id < 0 || id >= vocab) {
      out[i] = 0.0f;
      *bad = 1;
    } else {
      out[i] = table[int64_t{id} * dim + d];
    }
  }
}

} // namespace

int embedding_cuda(const int32_t* ids, int64_t n, const float* table, int vocab, int dim,
                   float* out, int* bad, cuda_stream s) {
  embedding_kernel<<<cuda::detail::grid_for(n * dim, 256), 256, 0, s>>>(ids, n, table, vocab, dim,
                                                                        out, bad);
  return cudaGetLastError();
}

} // namespace comb::kernels
