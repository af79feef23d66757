// Naive NHWC nearest / bilinear upsampling (tests only).
#include "kernels/ops/upsample.hpp"

#include <algorithm>
#include <cmath>

namespace comb::kernels {

void upsample_ref(const float* x, int64_t n, int64_t h, int64_t w, int64_t c,
                  const upsample_params& p, float* y) {
  int64_t s = p.scale, oh = h * s, ow = w * s;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t ch = 0; ch < c; ++ch) {
          float v;
          if (p.mode == upsample_mode::nearest) {
            v = x[((b * h + oy / s) * w + ox / s) * c + ch];
          } else {
            double sy = std::max(0.0, (oy + 0.5) / s - 0.5);
            double sx = std::max(0.0, (ox + 0.5) / s - 0.5);
            int64_t y0 = std::min<int64_t>(static_cast<int64_t>(sy), h - 1);
            int64_t x0 = std::min<int64_t>(static_cast<int64_t>(sx), w - 1);
            int64_t y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
            double fy = sy - y0, fx = sx - x0;
            auto at = [&](int64_t yy, int64_t xx) {
              return static_cast<double>(x[((b * h + yy) * w + xx) * c + ch]);
            };
            v = static_cast<float>((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1))
                                   + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1)));
          }
          y[((b * oh + oy) * ow + ox) * c + ch] = v;
        }
}

} // namespace comb::kernels
