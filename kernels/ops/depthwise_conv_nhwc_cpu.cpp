// Fast CPU depthwise convolution over NHWC; see depthwise_conv_nhwc.hpp (the reference is
// depthwise_conv_nhwc_ref.cpp).
#include "kernels/ops/depthwise_conv_nhwc.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <algorithm>
#include <cstdint>
// GCC 12 warns inside its own _mm512_max_ps/_mm512_min_ps (_mm512_undefined_ps, GCC bug
// 105593); the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <vector>

#include "kernels/detail/avx2_lanes.hpp"

namespace comb::kernels {

int same_padding(int in, int k, int stride, int& pad_begin) {
  int out = (in + stride - 1) / stride;
  int total = std::max((out - 1) * stride + k - in, 0);
  pad_begin = total / 2;
  return out;
}

namespace {

// The hand-written AVX-512 kernels run where the CPU has AVX-512F (which brings FMA) and
// COMB_KERNELS_NO_AVX512 is not set (the _portable test runs check the fallback).
const bool have_avx512 = (__builtin_cpu_init(), detail::use_avx512_kernels());

/// One output pixel's 16 channels of a 3x3 depthwise conv near the border (guarded).
__attribute__((target("avx512f,fma"))) inline void guarded_px(const float* const* rows,
                                                              const __m512* wv, __m512 bv,
                                                              __m512 vlo, __m512 vhi, __mmask16 m,
                                                              int ix0, int iw, int c, int ch,
                                                              float* o) {
  __m512 acc = bv;
  for (int ky = 0; ky < 3; ++ky) {
    if (!rows[ky])
      continue;
    for (int kx = 0; kx < 3; ++kx) {
      int ix = ix0 + kx;
      if (ix < 0 || ix >= iw)
        continue;
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, rows[ky] + static_cast<int64_t>(ix) * c + ch),
                            wv[ky * 3 + kx], acc);
    }
  }
  acc = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)); // operand order keeps NaN
  _mm512_mask_storeu_ps(o, m, acc);
}

/// One output row (all columns, all channels), AVX-512: 16 channels per vector. For each
/// block of 16 channels the 3x3 filter and bias stay in registers while the row is swept;
/// interior pixels take an unguarded path.
__attribute__((target("avx512f,fma"))) void row_avx512(const conv2d_nhwc_params& p, const float* in,
                                                       const float* w, const float* bias,
                                                       float* out, int oy) {
  const int c = p.c, kw = p.kw, out_w = p.out_w, sw = p.stride_w, pl = p.pad_left, iw = p.w;
  const __m512 vlo = _mm512_set1_ps(p.lo), vhi = _mm512_set1_ps(p.hi);
  if (p.kh != 3 || kw != 3) {
    for (int ox = 0; ox < out_w; ++ox) {
      float* o = out + (static_cast<int64_t>(oy) * out_w + ox) * c;
      int iy0 = oy * p.stride_h - p.pad_top, ix0 = ox * sw - pl;
      for (int ch = 0; ch < c; ch += 16) {
        __mmask16 m = c - ch >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (c - ch)) - 1);
        __m512 acc = bias ? _mm512_maskz_loadu_ps(m, bias + ch) : _mm512_setzero_ps();
        for (int ky = 0; ky < p.kh; ++ky) {
          int iy = iy0 + ky;
          if (iy < 0 || iy >= p.h)
            continue;
          for (int kx = 0; kx < kw; ++kx) {
            int ix = ix0 + kx;
            if (ix < 0 || ix >= iw)
              continue;
            acc = _mm512_fmadd_ps(
              _mm512_maskz_loadu_ps(m, in + (static_cast<int64_t>(iy) * iw + ix) * c + ch),
              _mm512_maskz_loadu_ps(m, w + (ky * kw + kx) * c + ch), acc);
          }
        }
        acc = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)); // operand order keeps NaN
        _mm512_mask_storeu_ps(o + ch, m, acc);
      }
    }
    return;
  }
  // Input rows for ky = 0..2 (nullptr where the row is padding).
  const float* rows[3];
  for (int ky = 0; ky < 3; ++ky) {
    int iy = oy * p.stride_h - p.pad_top + ky;
    rows[ky] = iy < 0 || iy >= p.h ? nullptr : in + static_cast<int64_t>(iy) * iw * c;
  }
  const bool all_rows = rows[0] && rows[1] && rows[2];
  // Output columns whose three input columns are all inside the image.
  int ox_begin = 0;
  while (ox_begin < out_w && ox_begin * sw - pl < 0)
    ++ox_begin;
  int ox_end = out_w;
  while (ox_end > ox_begin && (ox_end - 1) * sw - pl + 2 >= iw)
    --ox_end;
  float* orow = out + static_cast<int64_t>(oy) * out_w * c;
  for (int ch = 0; ch < c; ch += 16) {
    __mmask16 m = c - ch >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (c - ch)) - 1);
    __m512 wv[9];
    for (int t = 0; t < 9; ++t)
      wv[t] = _mm512_maskz_loadu_ps(m, w + t * c + ch);
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + ch) : _mm512_setzero_ps();
    if (!all_rows) {
      for (int ox = 0; ox < out_w; ++ox)
        guarded_px(rows, wv, bv, vlo, vhi, m, ox * sw - pl, iw, c, ch,
                   orow + static_cast<int64_t>(ox) * c + ch);
      continue;
    }
    for (int ox = 0; ox < ox_begin; ++ox)
      guarded_px(rows, wv, bv, vlo, vhi, m, ox * sw - pl, iw, c, ch,
                 orow + static_cast<int64_t>(ox) * c + ch);
    const float* r0 = rows[0] + ch;
    const float* r1 = rows[1] + ch;
    const float* r2 = rows[2] + ch;
    for (int ox = ox_begin; ox < ox_end; ++ox) {
      int64_t off = static_cast<int64_t>(ox * sw - pl) * c;
      __m512 a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r0 + off), wv[0], bv);
      __m512 a1 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, r0 + off + c), wv[1]);
      __m512 a2 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, r0 + off + 2 * c), wv[2]);
      a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r1 + off), wv[3], a0);
      a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r1 + off + c), wv[4], a1);
      a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r1 + off + 2 * c), wv[5], a2);
      a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r2 + off), wv[6], a0);
      a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r2 + off + c), wv[7], a1);
      a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r2 + off + 2 * c), wv[8], a2);
      __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
      acc = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc));
      _mm512_mask_storeu_ps(orow + static_cast<int64_t>(ox) * c + ch, m, acc);
    }
    for (int ox = ox_end; ox < out_w; ++ox)
      guarded_px(rows, wv, bv, vlo, vhi, m, ox * sw - pl, iw, c, ch,
                 orow + static_cast<int64_t>(ox) * c + ch);
  }
}

const bool have_avx2 = !have_avx512 && detail::use_avx2_kernels();

/// One output pixel's 8 channels of a 3x3 depthwise conv near the border (guarded), AVX2.
__attribute__((target("avx2,fma"))) inline void guarded_px_avx2(const float* const* rows,
                                                                const __m256* wv, __m256 bv,
                                                                __m256 vlo, __m256 vhi,
                                                                __m256i m, int ix0, int iw, int c,
                                                                int ch, float* o) {
  __m256 acc = bv;
  for (int ky = 0; ky < 3; ++ky) {
    if (!rows[ky])
      continue;
    for (int kx = 0; kx < 3; ++kx) {
      int ix = ix0 + kx;
      if (ix < 0 || ix >= iw)
        continue;
      acc = _mm256_fmadd_ps(_mm256_maskload_ps(rows[ky] + static_cast<int64_t>(ix) * c + ch, m),
                            wv[ky * 3 + kx], acc);
    }
  }
  acc = _mm256_min_ps(vhi, _mm256_max_ps(vlo, acc)); // operand order keeps NaN
  _mm256_maskstore_ps(o, m, acc);
}

/// One output row, AVX2: row_avx512 with 8 channels per vector.
__attribute__((target("avx2,fma"))) void row_avx2(const conv2d_nhwc_params& p, const float* in,
                                                  const float* w, const float* bias, float* out,
                                                  int oy) {
  const int c = p.c, kw = p.kw, out_w = p.out_w, sw = p.stride_w, pl = p.pad_left, iw = p.w;
  const __m256 vlo = _mm256_set1_ps(p.lo), vhi = _mm256_set1_ps(p.hi);
  if (p.kh != 3 || kw != 3) {
    for (int ox = 0; ox < out_w; ++ox) {
      float* o = out + (static_cast<int64_t>(oy) * out_w + ox) * c;
      int iy0 = oy * p.stride_h - p.pad_top, ix0 = ox * sw - pl;
      for (int ch = 0; ch < c; ch += 8) {
        __m256i m = detail::first_lanes(c - ch);
        __m256 acc = bias ? _mm256_maskload_ps(bias + ch, m) : _mm256_setzero_ps();
        for (int ky = 0; ky < p.kh; ++ky) {
          int iy = iy0 + ky;
          if (iy < 0 || iy >= p.h)
            continue;
          for (int kx = 0; kx < kw; ++kx) {
            int ix = ix0 + kx;
            if (ix < 0 || ix >= iw)
              continue;
            acc = _mm256_fmadd_ps(
              _mm256_maskload_ps(in + (static_cast<int64_t>(iy) * iw + ix) * c + ch, m),
              _mm256_maskload_ps(w + (ky * kw + kx) * c + ch, m), acc);
          }
        }
        acc = _mm256_min_ps(vhi, _mm256_max_ps(vlo, acc));
        _mm256_maskstore_ps(o + ch, m, acc);
      }
    }
    return;
  }
  const float* rows[3];
  for (int ky = 0; ky < 3; ++ky) {
    int iy = oy * p.stride_h - p.pad_top + ky;
    rows[ky] = iy < 0 || iy >= p.h ? nullptr : in + static_cast<int64_t>(iy) * iw * c;
  }
  const bool all_rows = rows[0] && rows[1] && rows[2];
  int ox_begin = 0;
  while (ox_begin < out_w && ox_begin * sw - pl < 0)
    ++ox_begin;
  int ox_end = out_w;
  while (ox_end > ox_begin && (ox_end - 1) * sw - pl + 2 >= iw)
    --ox_end;
  float* orow = out + static_cast<int64_t>(oy) * out_w * c;
  for (int ch = 0; ch < c; ch += 8) {
    __m256i m = detail::first_lanes(c - ch);
    __m256 wv[9];
    for (int t = 0; t < 9; ++t)
      wv[t] = _mm256_maskload_ps(w + t * c + ch, m);
    const __m256 bv = bias ? _mm256_maskload_ps(bias + ch, m) : _mm256_setzero_ps();
    if (!all_rows) {
      for (int ox = 0; ox < out_w; ++ox)
        guarded_px_avx2(rows, wv, bv, vlo, vhi, m, ox * sw - pl, iw, c, ch,
                        orow + static_cast<int64_t>(ox) * c + ch);
      continue;
    }
    for (int ox = 0; ox < ox_begin; ++ox)
      guarded_px_avx2(rows, wv, bv, vlo, vhi, m, ox * sw - pl, iw, c, ch,
                      orow + static_cast<int64_t>(ox) * c + ch);
    const float* r0 = rows[0] + ch;
    const float* r1 = rows[1] + ch;
    const float* r2 = rows[2] + ch;
    for (int ox = ox_begin; ox < ox_end; ++ox) {
      int64_t off = static_cast<int64_t>(ox * sw - pl) * c;
      __m256 a0 = _mm256_fmadd_ps(_mm256_maskload_ps(r0 + off, m), wv[0], bv);
      __m256 a1 = _mm256_mul_ps(_mm256_maskload_ps(r0 + off + c, m), wv[1]);
      __m256 a2 = _mm256_mul_ps(_mm256_maskload_ps(r0 + off + 2 * c, m), wv[2]);
      a0 = _mm256_fmadd_ps(_mm256_maskload_ps(r1 + off, m), wv[3], a0);
      a1 = _mm256_fmadd_ps(_mm256_maskload_ps(r1 + off + c, m), wv[4], a1);
      a2 = _mm256_fmadd_ps(_mm256_maskload_ps(r1 + off + 2 * c, m), wv[5], a2);
      a0 = _mm256_fmadd_ps(_mm256_maskload_ps(r2 + off, m), wv[6], a0);
      a1 = _mm256_fmadd_ps(_mm256_maskload_ps(r2 + off + c, m), wv[7], a1);
      a2 = _mm256_fmadd_ps(_mm256_maskload_ps(r2 + off + 2 * c, m), wv[8], a2);
      __m256 acc = _mm256_add_ps(_mm256_add_ps(a0, a1), a2);
      acc = _mm256_min_ps(vhi, _mm256_max_ps(vlo, acc));
      _mm256_maskstore_ps(orow + static_cast<int64_t>(ox) * c + ch, m, acc);
    }
    for (int ox = ox_end; ox < out_w; ++ox)
      guarded_px_avx2(rows, wv, bv, vlo, vhi, m, ox * sw - pl, iw, c, ch,
                      orow + static_cast<int64_t>(ox) * c + ch);
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
      else if (have_avx2)
        row_avx2(p, ib, weights, bias, ob, oy);
      else
        row_generic(p, ib, weights, bias, ob, oy);
    }
  };
  int threads = detail::cpu_threads();
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
