// Fast NHWC conv2d. Dense (groups 1, kernel larger than 1x1) with AVX-512 or AVX2: the
// conv1d register tiles over strips of 8 output pixels (detail/conv1d_tile.hpp). Pointwise (1x1,
// stride 1, unpadded, groups 1) with AVX-512: the whole batch as one dense layer (dense's
// AVX-512 GEMM). Otherwise dense
// and grouped: per image and group, im2col (one row per output pixel, [kh * kw * c_in/g]
// floats) and one OpenBLAS sgemm into the group's output columns (ldc = c_out). Depthwise: a direct loop over output rows with the channel loop
// vectorised. Backward: dw accumulates col^T dy, dx is dy W^T scattered back (col2im);
// depthwise backward is direct.
#include "kernels/ops/conv2d.hpp"

#include "kernels/detail/conv1d_tile.hpp"
#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"
#include "kernels/detail/blas.hpp"
#include "kernels/ops/dense.hpp"

#include <algorithm>
#include <cstring>

namespace comb::kernels {

conv2d_dims make_conv2d_dims(int64_t n, int64_t h, int64_t w, int64_t c_in, int64_t kh, int64_t kw,
                             int64_t c_out, const conv2d_params& p) {
  conv2d_dims d;
  d.n = n, d.h = h, d.w = w, d.c_in = c_in, d.kh = kh, d.kw = kw, d.c_out = c_out;
  d.stride_h = p.stride_h, d.stride_w = p.stride_w;
  d.pad_top = p.pad_top, d.pad_left = p.pad_left, d.groups = p.groups;
  d.oh = (h + p.pad_top + p.pad_bottom - kh) / p.stride_h + 1;
  d.ow = (w + p.pad_left + p.pad_right - kw) / p.stride_w + 1;
  return d;
}

namespace {

bool is_depthwise(const conv2d_dims& d) {
  return d.groups > 1 && d.groups == d.c_in && d.groups == d.c_out;
}

/// col [oh * ow, kh * kw * cig] for image n, group g.
void im2col(const conv2d_dims& d, const float* x, int64_t n, int64_t g, float* col) {
  int64_t cig = d.c_in / d.groups;
  int64_t kk = d.kh * d.kw * cig;
  detail::parallel_range(d.oh, 4, [&](int64_t y0, int64_t y1) {
    for (int64_t oy = y0; oy < y1; ++oy)
      for (int64_t ox = 0; ox < d.ow; ++ox) {
        float* dst = col + (oy * d.ow + ox) * kk;
        for (int64_t ky = 0; ky < d.kh; ++ky)
          for (int64_t kx = 0; kx < d.kw; ++kx) {
            int64_t iy = oy * d.stride_h + ky - d.pad_top;
            int64_t ix = ox * d.stride_w + kx - d.pad_left;
            float* o = dst + (ky * d.kw + kx) * cig;
            if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w)
              std::memset(o, 0, static_cast<size_t>(cig) * sizeof(float));
            else
              std::memcpy(o, x + ((n * d.h + iy) * d.w + ix) * d.c_in + g * cig,
                          static_cast<size_t>(cig) * sizeof(float));
          }
      }
  });
}

/// dx (image n, group g) += scatter of dcol. Single-threaded: windows overlap.
void col2im(const conv2d_dims& d, const float* dcol, int64_t n, int64_t g, float* dx) {
  int64_t cig = d.c_in / d.groups;
  int64_t kk = d.kh * d.kw * cig;
  for (int64_t oy = 0; oy < d.oh; ++oy)
    for (int64_t ox = 0; ox < d.ow; ++ox) {
      const float* src = dcol + (oy * d.ow + ox) * kk;
      for (int64_t ky = 0; ky < d.kh; ++ky)
        for (int64_t kx = 0; kx < d.kw; ++kx) {
          int64_t iy = oy * d.stride_h + ky - d.pad_top;
          int64_t ix = ox * d.stride_w + kx - d.pad_left;
          if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w)
            continue;
          float* o = dx + ((n * d.h + iy) * d.w + ix) * d.c_in + g * cig;
          const float* s = src + (ky * d.kw + kx) * cig;
          for (int64_t c = 0; c < cig; ++c)
            o[c] += s[c];
        }
    }
}

COMB_CLONES
void depthwise_row(const conv2d_dims& d, const float* x, const float* w, const float* bias,
                   int64_t n, int64_t oy, float* y) {
  int64_t c = d.c_out;
  for (int64_t ox = 0; ox < d.ow; ++ox) {
    float* out = y + ((n * d.oh + oy) * d.ow + ox) * c;
    for (int64_t ch = 0; ch < c; ++ch)
      out[ch] = bias ? bias[ch] : 0.0f;
    for (int64_t ky = 0; ky < d.kh; ++ky) {
      int64_t iy = oy * d.stride_h + ky - d.pad_top;
      if (iy < 0 || iy >= d.h)
        continue;
      for (int64_t kx = 0; kx < d.kw; ++kx) {
        int64_t ix = ox * d.stride_w + kx - d.pad_left;
        if (ix < 0 || ix >= d.w)
          continue;
        const float* in = x + ((n * d.h + iy) * d.w + ix) * c;
        const float* wk = w + (ky * d.kw + kx) * c;
        for (int64_t ch = 0; ch < c; ++ch)
          out[ch] += in[ch] * wk[ch];
      }
    }
  }
}

/// Dense (groups 1) convolution with AVX-512 or AVX2 through the conv1d register tiles: the
/// images are copied once between zero borders (when padded), then each output row is
/// strips of 8 pixels whose windows are kh segments of kw * c_in contiguous floats; no
/// im2col, no sgemm. Output rows split across threads.
void conv2d_tiles(const conv2d_dims& d, const float* x, const float* w, const float* bias,
                  float* y) {
#ifdef COMB_CONV1D_TILE_AVX512
  const int64_t len = d.kw * d.c_in, kd = d.kh * len;
  const int64_t fp = detail::conv1d_packed_width(d.c_out);
  float* wp = detail::scratch(static_cast<size_t>(kd * fp), 1);
  detail::conv1d_pack_weights(w, kd, d.c_out, wp);
  // Input extent the windows reach, padding included.
  const int64_t hp = std::max(d.h + d.pad_top, (d.oh - 1) * d.stride_h + d.kh);
  const int64_t wpp = std::max(d.w + d.pad_left, (d.ow - 1) * d.stride_w + d.kw);
  const bool copy = hp != d.h || wpp != d.w;
  const float* img = x;
  if (copy) {
    float* buf = detail::scratch(static_cast<size_t>(d.n * hp * wpp * d.c_in), 2);
    detail::parallel_range(d.n * hp, 4, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        int64_t n = r / hp, iy = r % hp - d.pad_top;
        float* dst = buf + r * wpp * d.c_in;
        std::fill(dst, dst + wpp * d.c_in, 0.0f);
        if (iy >= 0 && iy < d.h)
          std::memcpy(dst + d.pad_left * d.c_in, x + (n * d.h + iy) * d.w * d.c_in,
                      static_cast<size_t>(d.w * d.c_in) * sizeof(float));
      }
    });
    img = buf;
  }
  const int64_t stride = wpp * d.c_in;
  detail::parallel_range(d.n * d.oh, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t n = r / d.oh, oy = r % d.oh;
      const float* top = img + (n * hp + oy * d.stride_h) * stride;
      for (int64_t ox0 = 0; ox0 < d.ow; ox0 += detail::conv1d_tile_rows) {
        const float* rows[detail::conv1d_tile_rows];
        float* out[detail::conv1d_tile_rows];
        for (int i = 0; i < detail::conv1d_tile_rows; ++i) {
          int64_t ox = std::min<int64_t>(ox0 + i, d.ow - 1);
          rows[i] = top + ox * d.stride_w * d.c_in;
          out[i] = y + ((n * d.oh + oy) * d.ow + ox) * d.c_out;
        }
        int64_t real = std::min<int64_t>(detail::conv1d_tile_rows, d.ow - ox0);
        for (int64_t col0 = 0, width = 0; col0 < fp; col0 += width) {
          width = detail::conv1d_block_width(fp, col0);
          detail::conv2d_store_strip(rows, real, d.kh, stride, len, wp, col0, width, d.c_out,
                                     bias, out);
        }
      }
    }
  });
#endif
}

} // namespace

void conv2d_cpu(const conv2d_dims& d, const float* x, const float* w, const float* bias, float* y) {
  if (is_depthwise(d)) {
    detail::parallel_range(d.n * d.oh, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        depthwise_row(d, x, w, bias, r / d.oh, r % d.oh, y);
    });
    return;
  }
  if (d.groups == 1 && !(d.kh == 1 && d.kw == 1) && detail::conv1d_tiles_available()) {
    conv2d_tiles(d, x, w, bias, y);
    return;
  }
  int64_t cig = d.c_in / d.groups, cog = d.c_out / d.groups;
  int64_t kk = d.kh * d.kw * cig, pix = d.oh * d.ow;
  bool pointwise = d.kh == 1 && d.kw == 1 && d.stride_h == 1 && d.stride_w == 1 && d.pad_top == 0
                   && d.pad_left == 0 && d.oh == d.h && d.ow == d.w;
  if (pointwise && d.groups == 1 && detail::use_avx512_kernels()) {
    // The whole batch is one dense layer: [n * pix, c_in] x [c_in, c_out] + bias, through
    // dense's AVX-512 GEMM (one packing of w, rows of all images split across threads).
    dense_cpu(x, d.n * pix, d.c_in, w, d.c_out, bias, y);
    return;
  }
  float* col = pointwise ? nullptr : detail::scratch(static_cast<size_t>(pix * kk), 1);
  for (int64_t n = 0; n < d.n; ++n) {
    float* out = y + n * pix * d.c_out;
    // Groups write disjoint columns, so without a bias each sgemm simply overwrites C.
    if (bias)
      for (int64_t p = 0; p < pix; ++p)
        std::memcpy(out + p * d.c_out, bias, static_cast<size_t>(d.c_out) * sizeof(float));
    for (int64_t g = 0; g < d.groups; ++g) {
      // A 1x1, stride-1, unpadded convolution reads its rows straight from x (lda = c_in).
      const float* a = x + n * d.h * d.w * d.c_in + g * cig;
      int64_t lda = d.c_in;
      if (!pointwise) {
        im2col(d, x, n, g, col);
        a = col;
        lda = kk;
      }
      detail::sgemm(/*trans_a=*/false, /*trans_b=*/false, pix, cog, kk, 1.0f, a, lda, w + g * cog,
                    d.c_out, bias ? 1.0f : 0.0f, out + g * cog, d.c_out);
    }
  }
}

void conv2d_backward_cpu(const conv2d_dims& d, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* dbias) {
  int64_t cig = d.c_in / d.groups, cog = d.c_out / d.groups;
  int64_t kk = d.kh * d.kw * cig, pix = d.oh * d.ow;
  if (dx)
    std::memset(dx, 0, static_cast<size_t>(d.n * d.h * d.w * d.c_in) * sizeof(float));
  std::memset(dw, 0, static_cast<size_t>(kk * d.c_out) * sizeof(float));
  if (dbias) {
    std::memset(dbias, 0, static_cast<size_t>(d.c_out) * sizeof(float));
    for (int64_t i = 0; i < d.n * pix; ++i)
      for (int64_t o = 0; o < d.c_out; ++o)
        dbias[o] += dy[i * d.c_out + o];
  }
  if (is_depthwise(d)) {
    int64_t c = d.c_out;
    // Threads own channel blocks: dw and dx entries of a channel are touched by one thread.
    detail::parallel_range((c + 15) / 16, 1, [&](int64_t b0, int64_t b1) {
      int64_t c0 = b0 * 16, c1 = std::min(c, b1 * 16);
      for (int64_t n = 0; n < d.n; ++n)
        for (int64_t oy = 0; oy < d.oh; ++oy)
          for (int64_t ox = 0; ox < d.ow; ++ox) {
            const float* g = dy + ((n * d.oh + oy) * d.ow + ox) * c;
            for (int64_t ky = 0; ky < d.kh; ++ky) {
              int64_t iy = oy * d.stride_h + ky - d.pad_top;
              if (iy < 0 || iy >= d.h)
                continue;
              for (int64_t kx = 0; kx < d.kw; ++kx) {
                int64_t ix = ox * d.stride_w + kx - d.pad_left;
                if (ix < 0 || ix >= d.w)
                  continue;
                int64_t xi = ((n * d.h + iy) * d.w + ix) * c;
                int64_t wi = (ky * d.kw + kx) * c;
                for (int64_t ch = c0; ch < c1; ++ch) {
                  dw[wi + ch] += g[ch] * x[xi + ch];
                  if (dx)
                    dx[xi + ch] += g[ch] * w[wi + ch];
                }
              }
            }
          }
    });
    return;
  }
  float* col = detail::scratch(static_cast<size_t>(pix * kk), 1);
  float* dcol = dx ? detail::scratch(static_cast<size_t>(pix * kk), 2) : nullptr;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t g = 0; g < d.groups; ++g) {
      const float* gy = dy + n * pix * d.c_out + g * cog;
      im2col(d, x, n, g, col);
      detail::sgemm(/*trans_a=*/true, /*trans_b=*/false, kk, cog, pix, 1.0f, col, kk, gy, d.c_out,
                    1.0f, dw + g * cog, d.c_out);
      if (dx) {
        detail::sgemm(/*trans_a=*/false, /*trans_b=*/true, pix, kk, cog, 1.0f, gy, d.c_out,
                      w + g * cog, d.c_out, 0.0f, dcol, kk);
        col2im(d, dcol, n, g, dx);
      }
    }
}

} // namespace comb::kernels
