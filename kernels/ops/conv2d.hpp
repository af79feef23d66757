// comb::kernels conv2d: NHWC 2-D convolution with HWIO weights [kh, kw, c_in/g,
// c_out], stride, asymmetric zero padding and groups (depthwise when groups = c_in = c_out),
// optional bias, and its gradients. The fast version packs im2col rows per group and calls
// OpenBLAS sgemm; depthwise runs a direct, vectorised loop.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

/// Sizes of one conv2d.
struct conv2d_dims {
  int64_t n = 0, h = 0, w = 0, c_in = 0, kh = 0, kw = 0, c_out = 0, oh = 0, ow = 0;
  int stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0, groups = 1;
};

conv2d_dims make_conv2d_dims(int64_t n, int64_t h, int64_t w, int64_t c_in, int64_t kh, int64_t kw,
                             int64_t c_out, const conv2d_params& p);

void conv2d_ref(const conv2d_dims& d, const float* x, const float* w, const float* bias, float* y);
void conv2d_cpu(const conv2d_dims& d, const float* x, const float* w, const float* bias, float* y);

/// dx and dbias may be nullptr.
void conv2d_backward_ref(const conv2d_dims& d, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* dbias);
void conv2d_backward_cpu(const conv2d_dims& d, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* dbias);

} // namespace comb::kernels
