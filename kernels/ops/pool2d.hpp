// comb::kernels pooling on NHWC images: max and average pooling (window, stride,
// symmetric zero padding; average counts only elements inside the image), their gradients,
// and global average pooling.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

struct pool2d_dims {
  int64_t n = 0, h = 0, w = 0, c = 0, oh = 0, ow = 0;
  pool2d_params p;
};

pool2d_dims make_pool2d_dims(int64_t n, int64_t h, int64_t w, int64_t c, const pool2d_params& p);

void pool2d_ref(const pool2d_dims& d, const float* x, float* y);
void pool2d_cpu(const pool2d_dims& d, const float* x, float* y);

void pool2d_backward_ref(const pool2d_dims& d, const float* x, const float* dy, float* dx);
void pool2d_backward_cpu(const pool2d_dims& d, const float* x, const float* dy, float* dx);

void global_avg_pool_ref(const float* x, int64_t n, int64_t hw, int64_t c, float* y);
void global_avg_pool_cpu(const float* x, int64_t n, int64_t hw, int64_t c, float* y);

} // namespace comb::kernels
