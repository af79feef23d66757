// Fast NHWC upsampling: output rows split across threads; nearest copies whole channel
// vectors, bilinear blends four of them with weights computed once per output pixel.
#include "kernels/ops/upsample.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <algorithm>
#include <cstring>

namespace comb::kernels {

namespace {

COMB_CLONES
void blend(const float* a, const float* b, const float* c, const float* d, float wa, float wb,
           float wc, float wd, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i];
}

} // namespace

void upsample_cpu(const float* x, int64_t n, int64_t h, int64_t w, int64_t c,
                  const upsample_params& p, float* y) {
  int64_t s = p.scale, oh = h * s, ow = w * s;
  detail::parallel_range(n * oh, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t b = r / oh, oy = r % oh;
      float* out = y + r * ow * c;
      if (p.mode == upsample_mode::nearest) {
        const float* in = x + (b * h + oy / s) * w * c;
        for (int64_t ox = 0; ox < ow; ++ox)
          std::memcpy(out + ox * c, in + (ox / s) * c, static_cast<size_t>(c) * sizeof(float));
        continue;
      }
      double sy = std::max(0.0, (oy + 0.5) / s - 0.5);
      int64_t y0 = std::min<int64_t>(static_cast<int64_t>(sy), h - 1);
      int64_t y1 = std::min(y0 + 1, h - 1);
      float fy = static_cast<float>(sy - y0);
      for (int64_t ox = 0; ox < ow; ++ox) {
        double sx = std::max(0.0, (ox + 0.5) / s - 0.5);
        int64_t x0 = std::min<int64_t>(static_cast<int64_t>(sx), w - 1);
        int64_t x1 = std::min(x0 + 1, w - 1);
        float fx = static_cast<float>(sx - x0);
        auto at = [&](int64_t yy, int64_t xx) { return x + ((b * h + yy) * w + xx) * c; };
        blend(at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1), (1 - fy) * (1 - fx), (1 - fy) * fx,
              fy * (1 - fx), fy * fx, c, out + ox * c);
      }
    }
  });
}

} // namespace comb::kernels
