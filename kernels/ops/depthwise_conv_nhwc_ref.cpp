// Naive depthwise NHWC convolution (tests only): every output element summed over its
// window in double, padding skipped, then the clamp.
#include "kernels/ops/depthwise_conv_nhwc.hpp"

#include <algorithm>

namespace comb::kernels {

void depthwise_conv_nhwc_ref(const conv2d_nhwc_params& p, const float* in, const float* weights,
                             const float* bias, float* out) {
  for (int b = 0; b < p.n; ++b)
    for (int oy = 0; oy < p.out_h; ++oy)
      for (int ox = 0; ox < p.out_w; ++ox)
        for (int ch = 0; ch < p.c; ++ch) {
          double acc = bias ? bias[ch] : 0.0;
          for (int ky = 0; ky < p.kh; ++ky)
            for (int kx = 0; kx < p.kw; ++kx) {
              int iy = oy * p.stride_h - p.pad_top + ky;
              int ix = ox * p.stride_w - p.pad_left + kx;
              if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w)
                continue;
              acc += static_cast<double>(
                       in[((static_cast<int64_t>(b) * p.h + iy) * p.w + ix) * p.c + ch])
                     * weights[(ky * p.kw + kx) * p.c + ch];
            }
          float v = std::min(std::max(static_cast<float>(acc), p.lo), p.hi);
          out[((static_cast<int64_t>(b) * p.out_h + oy) * p.out_w + ox) * p.c + ch] = v;
        }
}

} // namespace comb::kernels
