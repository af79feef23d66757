// CUDA depthwise NHWC convolution; see depthwise_conv_nhwc.hpp. Mirrors
// depthwise_conv_nhwc_ref and is tested against it (tests/kernels/cuda_vision_test.cpp).
#include "kernels/ops/depthwise_conv_nhwc.hpp"

#include "kernels/cuda/launch.cuh"

#include <cuda_runtime_api.h>

namespace comb::kernels {

namespace {

// One thread per output element; consecutive threads take consecutive channels (coalesced).
__global__ void depthwise_nhwc_kernel(conv2d_nhwc_params g, const float* in, const float* w,
                                      const float* bias, float* out) {
  int64_t total = int64_t{g.n} * g.out_h * g.out_w * g.c;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    int c = static_cast<int>(i % g.c);
    int64_t q = i / g.c;
    int ox = static_cast<int>(q % g.out_w);
    q /= g.out_w;
    int oy = static_cast<int>(q % g.out_h);
    int b = static_cast<int>(q / g.out_h);
    float acc = bias ? bias[c] : 0.0f;
    for (int ky = 0; ky < g.kh; ++ky) {
      int iy = oy * g.stride_h - g.pad_top + ky;
      if (iy < 0 || iy >= g.h)
        continue;
      for (int kx = 0; kx < g.kw; ++kx) {
        int ix = ox * g.stride_w - g.pad_left + kx;
        if (ix < 0 || ix >= g.w)
          continue;
        acc = fmaf(in[((int64_t{b} * g.h + iy) * g.w + ix) * g.c + c],
                   w[(ky * g.kw + kx) * g.c + c], acc);
      }
    }
    acc = acc < g.lo ? g.lo : acc;
    acc = acc > g.hi ? g.hi : acc;
    out[i] = acc;
  }
}

} // namespace

int depthwise_conv_nhwc_cuda(const conv2d_nhwc_params& p, const float* in, const float* weights,
                             const float* bias, float* out, cuda_stream s) {
  int64_t total = int64_t{p.n} * p.out_h * p.out_w * p.c;
  depthwise_nhwc_kernel<<<cuda::detail::grid_for(total, 256), 256, 0, s>>>(p, in, weights, bias,
                                                                           out);
  return cudaGetLastError();
}

} // namespace comb::kernels
