// Naive NHWC max/avg pooling, gradients and global average pooling (tests only).
#include "kernels/ops/pool2d.hpp"

#include <limits>

namespace comb::kernels {

namespace {

/// Calls fn(x index) for each in-image element of output (n, oy, ox, ch)'s window.
template <class Fn>
void window(const pool2d_dims& d, int64_t n, int64_t oy, int64_t ox, int64_t ch, Fn&& fn) {
  for (int64_t ky = 0; ky < d.p.kernel_h; ++ky)
    for (int64_t kx = 0; kx < d.p.kernel_w; ++kx) {
      int64_t iy = oy * d.p.stride_h + ky - d.p.pad_h;
      int64_t ix = ox * d.p.stride_w + kx - d.p.pad_w;
      if (iy >= 0 && iy < d.h && ix >= 0 && ix < d.w)
        fn(((n * d.h + iy) * d.w + ix) * d.c + ch);
    }
}

} // namespace

void pool2d_ref(const pool2d_dims& d, const float* x, float* y) {
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t oy = 0; oy < d.oh; ++oy)
      for (int64_t ox = 0; ox < d.ow; ++ox)
        for (int64_t ch = 0; ch < d.c; ++ch) {
          float best = -std::numeric_limits<float>::infinity();
          double sum = 0;
          int64_t count = 0;
          window(d, n, oy, ox, ch, [&](int64_t i) {
            if (x[i] > best)
              best = x[i];
            sum += x[i];
            ++count;
          });
          y[((n * d.oh + oy) * d.ow + ox) * d.c + ch] = d.p.kind == pool_kind::max
                                                          ? best
                                                          : static_cast<float>(count ? sum / count
                                                                                     : 0.0);
        }
}

void pool2d_backward_ref(const pool2d_dims& d, const float* x, const float* dy, float* dx) {
  for (int64_t i = 0; i < d.n * d.h * d.w * d.c; ++i)
    dx[i] = 0;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t oy = 0; oy < d.oh; ++oy)
      for (int64_t ox = 0; ox < d.ow; ++ox)
        for (int64_t ch = 0; ch < d.c; ++ch) {
          float g = dy[((n * d.oh + oy) * d.ow + ox) * d.c + ch];
          if (d.p.kind == pool_kind::max) {
            int64_t arg = -1;
            window(d, n, oy, ox, ch, [&](int64_t i) {
              if (arg < 0 || x[i] > x[arg])
                arg = i;
            });
            if (arg >= 0)
              dx[arg] += g;
          } else {
            int64_t count = 0;
            window(d, n, oy, ox, ch, [&](int64_t) { ++count; });
            window(d, n, oy, ox, ch, [&](int64_t i) { dx[i] += g / count; });
          }
        }
}

void global_avg_pool_ref(const float* x, int64_t n, int64_t hw, int64_t c, float* y) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      double s = 0;
      for (int64_t p = 0; p < hw; ++p)
        s += x[(i * hw + p) * c + ch];
      y[i * c + ch] = static_cast<float>(s / hw);
    }
}

} // namespace comb::kernels
