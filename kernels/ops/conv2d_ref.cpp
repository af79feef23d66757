// Naive grouped NHWC conv2d and its gradients (tests only).
#include "kernels/ops/conv2d.hpp"

namespace comb::kernels {

namespace {

template <class Fn>
void for_each_tap(const conv2d_dims& d, Fn&& fn) {
  int64_t cig = d.c_in / d.groups, cog = d.c_out / d.groups;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t oy = 0; oy < d.oh; ++oy)
      for (int64_t ox = 0; ox < d.ow; ++ox)
        for (int64_t o = 0; o < d.c_out; ++o) {
          int64_t g = o / cog;
          int64_t yi = ((n * d.oh + oy) * d.ow + ox) * d.c_out + o;
          for (int64_t ky = 0; ky < d.kh; ++ky)
            for (int64_t kx = 0; kx < d.kw; ++kx) {
              int64_t iy = oy * d.stride_h + ky - d.pad_top;
              int64_t ix = ox * d.stride_w + kx - d.pad_left;
              if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w)
                continue;
              for (int64_t c = 0; c < cig; ++c) {
                int64_t xi = ((n * d.h + iy) * d.w + ix) * d.c_in + g * cig + c;
                int64_t wi = ((ky * d.kw + kx) * cig + c) * d.c_out + o;
                fn(yi, xi, wi);
              }
            }
        }
}

} // namespace

void conv2d_ref(const conv2d_dims& d, const float* x, const float* w, const float* bias, float* y) {
  int64_t ny = d.n * d.oh * d.ow * d.c_out;
  for (int64_t i = 0; i < ny; ++i)
    y[i] = bias ? bias[i % d.c_out] : 0.0f;
  for_each_tap(d, [&](int64_t yi, int64_t xi, int64_t wi) { y[yi] += x[xi] * w[wi]; });
}

void conv2d_backward_ref(const conv2d_dims& d, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* dbias) {
  if (dx)
    for (int64_t i = 0; i < d.n * d.h * d.w * d.c_in; ++i)
      dx[i] = 0;
  for (int64_t i = 0; i < d.kh * d.kw * (d.c_in / d.groups) * d.c_out; ++i)
    dw[i] = 0;
  if (dbias) {
    for (int64_t o = 0; o < d.c_out; ++o)
      dbias[o] = 0;
    for (int64_t i = 0; i < d.n * d.oh * d.ow * d.c_out; ++i)
      dbias[i % d.c_out] += dy[i];
  }
  for_each_tap(d, [&](int64_t yi, int64_t xi, int64_t wi) {
    dw[wi] += dy[yi] * x[xi];
    if (dx)
      dx[xi] += dy[yi] * w[wi];
  });
}

} // namespace comb::kernels
