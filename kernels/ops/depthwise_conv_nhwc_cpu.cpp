// Reference and fast CPU depthwise convolution over NHWC; see depthwise_conv_nhwc.hpp.
#include "kernels/ops/depthwise_conv_nhwc.hpp"

#include "kernels/detail/task_pool.hpp"

#include <algorithm>
// GCC 12 warns inside its own _mm512_max_ps/_mm512_min_ps (_mm512_undefined_ps, GCC bug
// 105593); the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <vector>

namespace comb::kernels {

int same_padding(int in, int k, int stride, int& pad_begin) {
  int out = (in + stride - 1) / stride;
  int total = std::max((out - 1) * stride + k - in, 0);
  pad_begin = total / 2;
  return out;
}

void depthwise_conv_nhwc_reference(const conv2d_nhwc_params& p, const float* in,
                                   const float* weights, const float* bias, float* out) {
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
              acc += static_cast<double>(in[((static_cast<int64_t>(b) * p.h + iy) * p.w + ix) * p.c + ch])
                     * weights[(ky * p.kw + kx) * p.c + ch];
            }
          float v = std::min(std::max(static_cast<float>(acc), p.lo), p.hi);
          out[((static_cast<int64_t>(b) * p.out_h + oy) * p.out_w + ox) * p.c + ch] = v;
        }
}

namespace {

bool detect_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
}

const bool have_avx512 = detect_avx512();

/// One output row (all columns, all channels), AVX-512: 16 channels per vector.
__attribute__((target("avx512f,fma"))) void
row_avx512(const conv2d_nhwc_params& p, const float* in, const float* w, const float* bias,
           float* out, int oy) {
  const int c = p.c;
  __m512 vlo = _mm512_set1_ps(p.lo), vhi = _mm512_set1_ps(p.hi);
  for (int ox = 0; ox < p.out_w; ++ox) {
    float* o = out + (static_cast<int64_t>(oy) * p.out_w + ox) * c;
    int iy0 = oy * p.stride_h - p.pad_top, ix0 = ox * p.stride_w - p.pad_left;
    for (int ch = 0; ch < c; ch += 16) {
      __mmask16 m = c - ch >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (c - ch)) - 1);
      __m512 acc = bias ? _mm512_maskz_loadu_ps(m, bias + ch) : _mm512_setzero_ps();
      for (int ky = 0; ky < p.kh; ++ky) {
        int iy = iy0 + ky;
        if (iy < 0 || iy >= p.h)
          continue;
        const float* irow = in + static_cast<int64_t>(iy) * p.w * c + ch;
        const float* wrow = w + ky * p.kw * c + ch;
        for (int kx = 0; kx < p.kw; ++kx) {
          int ix = ix0 + kx;
          if (ix < 0 || ix >= p.w)
            continue;
          acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, irow + static_cast<int64_t>(ix) * c),
                                _mm512_maskz_loadu_ps(m, wrow + kx * c), acc);
        }
      }
      acc = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)); // operand order keeps NaN
      _mm512_mask_storeu_ps(o + ch, m, acc);
    }
  }
}

/// Portable version of one output row; the channel loop vectorises.
void row_generic(const conv2d_nhwc_params& p, const float* in, const float* w, const float* bias,
                 float* out, int oy) {
  const int c = p.c;
  std::vector<float> acc(c);
  for (int ox = 0; ox < p.out_w; ++ox) {
    for (int ch = 0; ch < c; ++ch)
      acc[ch] = bias ? bias[ch] : 0.0f;
    for (int ky = 0; ky < p.kh; ++ky) {
      int iy = oy * p.stride_h - p.pad_top + ky;
      if (iy < 0 || iy >= p.h)
        continue;
      for (int kx = 0; kx < p.kw; ++kx) {
        int ix = ox * p.stride_w - p.pad_left + kx;
        if (ix < 0 || ix >= p.w)
          continue;
        const float* ip = in + (static_cast<int64_t>(iy) * p.w + ix) * c;
        const float* wp = w + (ky * p.kw + kx) * c;
        for (int ch = 0; ch < c; ++ch)
          acc[ch] += ip[ch] * wp[ch];
      }
    }
    float* o = out + (static_cast<int64_t>(oy) * p.out_w + ox) * c;
    for (int ch = 0; ch < c; ++ch)
      o[ch] = std::min(std::max(acc[ch], p.lo), p.hi);
  }
}

} // namespace

void depthwise_conv_nhwc(const conv2d_nhwc_params& p, const float* in, const float* weights,
                         const float* bias, float* out) {
  const int64_t rows = static_cast<int64_t>(p.n) * p.out_h;
  auto run_rows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int b = static_cast<int>(r / p.out_h), oy = static_cast<int>(r % p.out_h);
      const float* ib = in + static_cast<int64_t>(b) * p.h * p.w * p.c;
      float* ob = out + static_cast<int64_t>(b) * p.out_h * p.out_w * p.c;
      if (have_avx512)
        row_avx512(p, ib, weights, bias, ob, oy);
      else
        row_generic(p, ib, weights, bias, ob, oy);
    }
  };
  int threads = detail::vision_threads();
  if (threads == 1 || rows * p.out_w * p.c < 20000) {
    run_rows(0, rows);
    return;
  }
  // Several parts per thread, so that a descheduled thread's share is taken by the others.
  int64_t nparts = std::min<int64_t>(rows, 4 * threads);
  int64_t per = (rows + nparts - 1) / nparts;
  nparts = (rows + per - 1) / per;
  detail::parallel_for(static_cast<int>(nparts), [&](int t) {
    run_rows(std::min(rows, t * per), std::min(rows, (t + 1) * per));
  });
}

} // namespace comb::kernels
