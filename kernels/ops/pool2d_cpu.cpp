// Fast NHWC pooling: output rows split across threads, the channel loop (contiguous in
// NHWC) vectorised. Max backward routes to the first maximum, as the reference.
#include "kernels/ops/pool2d.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace comb::kernels {

pool2d_dims make_pool2d_dims(int64_t n, int64_t h, int64_t w, int64_t c, const pool2d_params& p) {
  pool2d_dims d;
  d.n = n, d.h = h, d.w = w, d.c = c, d.p = p;
  d.oh = (h + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
  d.ow = (w + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
  return d;
}

namespace {

COMB_CLONES
void pool_row(const pool2d_dims& d, const float* x, int64_t n, int64_t oy, float* y) {
  const auto& p = d.p;
  int64_t y0 = std::max<int64_t>(0, oy * p.stride_h - p.pad_h);
  int64_t y1 = std::min<int64_t>(d.h, oy * p.stride_h - p.pad_h + p.kernel_h);
  for (int64_t ox = 0; ox < d.ow; ++ox) {
    int64_t x0 = std::max<int64_t>(0, ox * p.stride_w - p.pad_w);
    int64_t x1 = std::min<int64_t>(d.w, ox * p.stride_w - p.pad_w + p.kernel_w);
    float* out = y + ((n * d.oh + oy) * d.ow + ox) * d.c;
    if (p.kind == pool_kind::max) {
      for (int64_t ch = 0; ch < d.c; ++ch)
        out[ch] = -std::numeric_limits<float>::infinity();
      for (int64_t iy = y0; iy < y1; ++iy)
        for (int64_t ix = x0; ix < x1; ++ix) {
          const float* in = x + ((n * d.h + iy) * d.w + ix) * d.c;
          for (int64_t ch = 0; ch < d.c; ++ch)
            out[ch] = in[ch] > out[ch] ? in[ch] : out[ch];
        }
    } else {
      for (int64_t ch = 0; ch < d.c; ++ch)
        out[ch] = 0;
      for (int64_t iy = y0; iy < y1; ++iy)
        for (int64_t ix = x0; ix < x1; ++ix) {
          const float* in = x + ((n * d.h + iy) * d.w + ix) * d.c;
          for (int64_t ch = 0; ch < d.c; ++ch)
            out[ch] += in[ch];
        }
      int64_t count = (y1 - y0) * (x1 - x0);
      float inv = count ? 1.0f / static_cast<float>(count) : 0.0f;
      for (int64_t ch = 0; ch < d.c; ++ch)
        out[ch] *= inv;
    }
  }
}

} // namespace

void pool2d_cpu(const pool2d_dims& d, const float* x, float* y) {
  detail::parallel_range(d.n * d.oh, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      pool_row(d, x, r / d.oh, r % d.oh, y);
  });
}

void pool2d_backward_cpu(const pool2d_dims& d, const float* x, const float* dy, float* dx) {
  const auto& p = d.p;
  // Windows of different output rows overlap in the input, so threads own whole images.
  detail::parallel_range(d.n, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      std::memset(dx + n * d.h * d.w * d.c, 0,
                  static_cast<size_t>(d.h * d.w * d.c) * sizeof(float));
      for (int64_t oy = 0; oy < d.oh; ++oy) {
        int64_t y0 = std::max<int64_t>(0, oy * p.stride_h - p.pad_h);
        int64_t y1 = std::min<int64_t>(d.h, oy * p.stride_h - p.pad_h + p.kernel_h);
        for (int64_t ox = 0; ox < d.ow; ++ox) {
          int64_t x0 = std::max<int64_t>(0, ox * p.stride_w - p.pad_w);
          int64_t x1 = std::min<int64_t>(d.w, ox * p.stride_w - p.pad_w + p.kernel_w);
          const float* g = dy + ((n * d.oh + oy) * d.ow + ox) * d.c;
          if (p.kind == pool_kind::max) {
            for (int64_t ch = 0; ch < d.c; ++ch) {
              int64_t arg = -1;
              for (int64_t iy = y0; iy < y1; ++iy)
                for (int64_t ix = x0; ix < x1; ++ix) {
                  int64_t i = ((n * d.h + iy) * d.w + ix) * d.c + ch;
                  if (arg < 0 || x[i] > x[arg])
                    arg = i;
                }
              if (arg >= 0)
                dx[arg] += g[ch];
            }
          } else {
            int64_t count = (y1 - y0) * (x1 - x0);
            if (count == 0)
              continue;
            for (int64_t iy = y0; iy < y1; ++iy)
              for (int64_t ix = x0; ix < x1; ++ix) {
                float* o = dx + ((n * d.h + iy) * d.w + ix) * d.c;
                for (int64_t ch = 0; ch < d.c; ++ch)
                  o[ch] += g[ch] / static_cast<float>(count);
              }
          }
        }
      }
    }
  });
}

void global_avg_pool_cpu(const float* x, int64_t n, int64_t hw, int64_t c, float* y) {
  detail::parallel_range(n, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t i = n0; i < n1; ++i) {
      float* out = y + i * c;
      for (int64_t ch = 0; ch < c; ++ch)
        out[ch] = 0;
      for (int64_t p = 0; p < hw; ++p)
        for (int64_t ch = 0; ch < c; ++ch)
          out[ch] += x[(i * hw + p) * c + ch];
      float inv = 1.0f / static_cast<float>(hw);
      for (int64_t ch = 0; ch < c; ++ch)
        out[ch] *= inv;
    }
  });
}

} // namespace comb::kernels
