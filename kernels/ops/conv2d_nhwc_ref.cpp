// Naive dense NHWC convolution (tests only): every output element summed over its window
// and input channels in double, padding skipped, then bias, residual and the clamp.
#include "kernels/ops/conv2d_nhwc.hpp"

#include <algorithm>

namespace comb::kernels {

void conv2d_nhwc_ref(const conv2d_nhwc_params& p, int cout, const float* in, const float* hwio,
                     const float* bias, float* out, const float* residual) {
  for (int b = 0; b < p.n; ++b)
    for (int oy = 0; oy < p.out_h; ++oy)
      for (int ox = 0; ox < p.out_w; ++ox)
        for (int co = 0; co < cout; ++co) {
          double acc = 0;
          for (int ky = 0; ky < p.kh; ++ky)
            for (int kx = 0; kx < p.kw; ++kx) {
              int iy = oy * p.stride_h - p.pad_top + ky;
              int ix = ox * p.stride_w - p.pad_left + kx;
              if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w)
                continue;
              for (int ci = 0; ci < p.c; ++ci)
                acc += static_cast<double>(
                         in[((static_cast<int64_t>(b) * p.h + iy) * p.w + ix) * p.c + ci])
                       * hwio[((ky * p.kw + kx) * p.c + ci) * cout + co];
            }
          int64_t o = ((static_cast<int64_t>(b) * p.out_h + oy) * p.out_w + ox) * cout + co;
          float v = static_cast<float>(acc);
          if (bias)
            v += bias[co];
          if (residual)
            v += residual[o];
          out[o] = std::min(std::max(v, p.lo), p.hi);
        }
}

} // namespace comb::kernels
