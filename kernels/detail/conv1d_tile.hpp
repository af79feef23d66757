// comb::kernels::detail conv1d tiles: the register-blocked inner kernel shared by the CPU
// conv1d, conv1d_max and the dense conv2d (whose windows are kh segments of kw * c_in), and the
// weight gradient of conv1d. Weights are packed block by block (blocks of 48 filters, the last
// 64 as two of 32; c_out
// rounded up to 16 with zero columns), each block one contiguous [k * c_in, width] panel;
// a tile is 8 consecutive windows (time steps) x the block's 1 to 3 vectors of 16 filters,
// accumulated in up to 24 AVX-512 registers over the k * c_in inputs of each window, read
// straight from the sequence (a window of k rows is k * c_in contiguous floats, so no
// im2col). On CPUs with AVX2 and FMA but no AVX-512, tiles of 4 or 6 windows x 2 or 3 vectors
// of 8 filters run over the same packed blocks (conv1d_store_block / conv1d_max_block /
// conv1d_weight_grad_tiles choose). Internal to kernels/ops; pure functions, thread-safe.
#pragma once

#include "kernels/detail/simd.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#  include <immintrin.h>
#  include "kernels/detail/avx2_lanes.hpp"
#  define COMB_CONV1D_TILE_AVX512 1
#endif

namespace comb::kernels::detail {

constexpr int conv1d_tile_rows = 8;

/// Filters per column block: 3 vectors of 16 (the last block 1 to 3).
constexpr int64_t conv1d_block_cols = 48;

/// fp: c_out rounded up to 16.
inline int64_t conv1d_packed_width(int64_t c_out) {
  return (c_out + 15) / 16 * 16;
}

/// Width of the filter block at col0 of fp: 48, except that the last 64 go as two blocks of
/// 32 rather than 48 + 16 (a tile of one vector per row runs at about 80% of the rate of
/// two or three: 8 broadcasts for 8 FMAs).
inline int64_t conv1d_block_width(int64_t fp, int64_t col0) {
  int64_t left = fp - col0;
  return left == 64 ? 32 : std::min(conv1d_block_cols, left);
}

/// wp [kd * fp] = w [kd, c_out] packed block by block: the block of filters
/// [col0, col0 + width), width = conv1d_block_width(fp, col0), is one contiguous [kd, width]
/// panel at wp + kd * col0, with zero columns past c_out.
inline void conv1d_pack_weights(const float* w, int64_t kd, int64_t c_out, float* wp) {
  int64_t fp = conv1d_packed_width(c_out);
  for (int64_t col0 = 0, width = 0; col0 < fp; col0 += width) {
    width = conv1d_block_width(fp, col0);
    int64_t real = std::clamp<int64_t>(c_out - col0, 0, width);
    float* panel = wp + kd * col0;
    for (int64_t kk = 0; kk < kd; ++kk) {
      std::memcpy(panel + kk * width, w + kk * c_out + col0,
                  static_cast<size_t>(real) * sizeof(float));
      std::fill(panel + kk * width + real, panel + (kk + 1) * width, 0.0f);
    }
  }
}

/// Whether the AVX-512 tiles run (detail::use_avx512_kernels()).
inline bool conv1d_tile_avx512() {
#ifdef COMB_CONV1D_TILE_AVX512
  return use_avx512_kernels();
#else
  return false;
#endif
}

#ifdef COMB_CONV1D_TILE_AVX512
/// acc[r][v] = window(rows[r]) . columns [16 v, 16 v + 16) of a panel [nseg * len, 16 V],
/// a window being nseg segments of len contiguous floats, segment s at rows[r] + s * stride
/// (conv1d: one segment of k * c_in; conv2d: kh segments of kw * c_in, one per kernel row).
template <int V>
__attribute__((target("avx512f"), always_inline)) inline void conv_tile_accumulate(
  const float* const* rows, int64_t nseg, int64_t stride, int64_t len, const float* panel,
  __m512 (&acc)[conv1d_tile_rows][V]) {
#  pragma GCC unroll 8
  for (int r = 0; r < conv1d_tile_rows; ++r)
#  pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      acc[r][v] = _mm512_setzero_ps();
  for (int64_t s = 0; s < nseg; ++s) {
    const float* seg[conv1d_tile_rows];
#  pragma GCC unroll 8
    for (int r = 0; r < conv1d_tile_rows; ++r)
      seg[r] = rows[r] + s * stride;
    const float* ps = panel + s * len * (16 * V);
    for (int64_t kk = 0; kk < len; ++kk) {
      const float* wr = ps + kk * (16 * V);
      __m512 wv[V];
#  pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
        wv[v] = _mm512_load_ps(wr + 16 * v);
#  pragma GCC unroll 8
      for (int r = 0; r < conv1d_tile_rows; ++r) {
        __m512 xb = _mm512_set1_ps(seg[r][kk]);
#  pragma GCC unroll 4
        for (int v = 0; v < V; ++v)
          acc[r][v] = _mm512_fmadd_ps(xb, wv[v], acc[r][v]);
      }
    }
  }
}

/// Stores acc rows [0, n) (n <= 8) to out[r] + col0 for the block's V vectors, clipped to
/// c_out, plus bias (nullptr: none).
template <int V>
__attribute__((target("avx512f"), always_inline)) inline void conv_tile_store(
  const __m512 (&acc)[conv1d_tile_rows][V], int64_t n, float* const* out, int64_t col0,
  int64_t c_out, const float* bias) {
  __mmask16 mask[V];
  __m512 bv[V];
#  pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    int64_t left = std::clamp<int64_t>(c_out - col0 - 16 * v, 0, 16);
    mask[v] = static_cast<__mmask16>((1u << left) - 1);
    bv[v] = bias ? _mm512_maskz_loadu_ps(mask[v], bias + col0 + 16 * v) : _mm512_setzero_ps();
  }
#  pragma GCC unroll 8
  for (int r = 0; r < conv1d_tile_rows; ++r) {
    if (r >= n)
      break;
#  pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      _mm512_mask_storeu_ps(out[r] + col0 + 16 * v, mask[v], _mm512_add_ps(acc[r][v], bv[v]));
  }
}

/// Windows t = 0 .. t_out - 1 of one sequence (window t starts at row t of xs, rows of
/// c_in floats) against the block at filter col0 (V vectors) of the packed wp; ys
/// [t_out, c_out] gets those columns clipped to c_out, plus bias (nullptr: none).
template <int V>
__attribute__((target("avx512f"))) void conv1d_tiles_store(const float* xs, int64_t c_in,
                                                           int64_t kd, int64_t t_out,
                                                           const float* wp, int64_t col0,
                                                           int64_t c_out, const float* bias,
                                                           float* ys) {
  for (int64_t t0 = 0; t0 < t_out; t0 += conv1d_tile_rows) {
    const float* rows[conv1d_tile_rows];
    float* out[conv1d_tile_rows];
#  pragma GCC unroll 8
    for (int r = 0; r < conv1d_tile_rows; ++r) {
      int64_t t = std::min<int64_t>(t0 + r, t_out - 1);
      rows[r] = xs + t * c_in;
      out[r] = ys + t * c_out;
    }
    __m512 acc[conv1d_tile_rows][V];
    conv_tile_accumulate<V>(rows, 1, 0, kd, wp + kd * col0, acc);
    conv_tile_store<V>(acc, std::min<int64_t>(conv1d_tile_rows, t_out - t0), out, col0, c_out,
                       bias);
  }
}

/// The weight gradient of one sequence, transposed: dwt [c_out, kd] (row stride kd) +=
/// dy^T windows, dwt[o, kk] += sum over t < n of dys[t * c_out + o] * xs[t * c_in + kk] (the
/// window of t is the kd contiguous floats from row t of xs). A tile is RK filters (each
/// dy value broadcast) x V vectors of 16 window positions, accumulated in registers over all
/// n time steps and added to dwt once; x and dy are read straight from the sequence, so no
/// im2col and no padded copy of dy. kd's last vector is masked.
template <int RK, int V>
__attribute__((target("avx512f"))) void conv1d_dw_tile(const float* xs, int64_t c_in, int64_t kd,
                                                       const float* dys, int64_t c_out, int64_t n,
                                                       int64_t o0, int64_t k0, float* dwt) {
  __mmask16 mask[V];
#  pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    int64_t left = std::clamp<int64_t>(kd - k0 - 16 * v, 0, 16);
    mask[v] = static_cast<__mmask16>((1u << left) - 1);
  }
  __m512 acc[RK][V];
#  pragma GCC unroll 8
  for (int i = 0; i < RK; ++i)
#  pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      acc[i][v] = _mm512_setzero_ps();
  const float* xr = xs + k0;
  const float* dr = dys + o0;
  for (int64_t t = 0; t < n; ++t, xr += c_in, dr += c_out) {
    __m512 xv[V];
#  pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      xv[v] = _mm512_maskz_loadu_ps(mask[v], xr + 16 * v);
#  pragma GCC unroll 8
    for (int i = 0; i < RK; ++i) {
      __m512 g = _mm512_set1_ps(dr[i]);
#  pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
        acc[i][v] = _mm512_fmadd_ps(g, xv[v], acc[i][v]);
    }
  }
#  pragma GCC unroll 8
  for (int i = 0; i < RK; ++i)
#  pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      float* o = dwt + (o0 + i) * kd + k0 + 16 * v;
      _mm512_mask_storeu_ps(o, mask[v], _mm512_add_ps(_mm512_maskz_loadu_ps(mask[v], o), acc[i][v]));
    }
}

/// conv1d_dw_tile<RK, 1..4> for the vectors of kd from k0 on, V = min(4, what is left).
template <int RK>
__attribute__((target("avx512f"))) void conv1d_dw_rows(const float* xs, int64_t c_in, int64_t kd,
                                                       const float* dys, int64_t c_out, int64_t n,
                                                       int64_t o0, float* dwt) {
  for (int64_t k0 = 0; k0 < kd; k0 += 64) {
    switch (std::min<int64_t>(4, (kd - k0 + 15) / 16)) {
    case 4:
      conv1d_dw_tile<RK, 4>(xs, c_in, kd, dys, c_out, n, o0, k0, dwt);
      break;
    case 3:
      conv1d_dw_tile<RK, 3>(xs, c_in, kd, dys, c_out, n, o0, k0, dwt);
      break;
    case 2:
      conv1d_dw_tile<RK, 2>(xs, c_in, kd, dys, c_out, n, o0, k0, dwt);
      break;
    default:
      conv1d_dw_tile<RK, 1>(xs, c_in, kd, dys, c_out, n, o0, k0, dwt);
      break;
    }
  }
}

/// dwt [c_out, kd] += the weight gradient of one sequence (conv1d_dw_tile): filters in tiles
/// of 6 (24 accumulators with 4 vectors), the last 0 to 5 as tiles of 4, 2 and 1.
__attribute__((target("avx512f"))) inline void conv1d_weight_grad(const float* xs, int64_t c_in,
                                                                  int64_t kd, const float* dys,
                                                                  int64_t c_out, int64_t n,
                                                                  float* dwt) {
  int64_t o0 = 0;
  for (; o0 + 6 <= c_out; o0 += 6)
    conv1d_dw_rows<6>(xs, c_in, kd, dys, c_out, n, o0, dwt);
  if (o0 + 4 <= c_out) {
    conv1d_dw_rows<4>(xs, c_in, kd, dys, c_out, n, o0, dwt);
    o0 += 4;
  }
  if (o0 + 2 <= c_out) {
    conv1d_dw_rows<2>(xs, c_in, kd, dys, c_out, n, o0, dwt);
    o0 += 2;
  }
  if (o0 < c_out)
    conv1d_dw_rows<1>(xs, c_in, kd, dys, c_out, n, o0, dwt);
}

/// A strip of up to 8 output pixels of a dense 2-D convolution (NHWC): rows[r] is the
/// top-left input of pixel r's window in a padded image with row stride `stride` floats,
/// the window kh segments of kw * c_in floats; out[r] its output row. n pixels are real.
template <int V>
__attribute__((target("avx512f"))) void conv2d_tile_store(const float* const* rows, int64_t n,
                                                          int64_t kh, int64_t stride, int64_t len,
                                                          const float* wp, int64_t col0,
                                                          int64_t c_out, const float* bias,
                                                          float* const* out) {
  __m512 acc[conv1d_tile_rows][V];
  conv_tile_accumulate<V>(rows, kh, stride, len, wp + kh * len * col0, acc);
  conv_tile_store<V>(acc, n, out, col0, c_out, bias);
}

/// Max over windows t = 0 .. t_out - 1 for the block at filter col0 (V vectors): best/arg
/// (indexed by filter) get the first maximum and its t for the block's 16 V filters.
template <int V>
__attribute__((target("avx512f"))) void conv1d_tiles_max(const float* xs, int64_t c_in, int64_t kd,
                                                         int64_t t_out, const float* wp,
                                                         int64_t col0, float* best, int32_t* arg) {
  __m512 bv[V];
  __m512i av[V];
  for (int v = 0; v < V; ++v) {
    bv[v] = _mm512_setzero_ps();
    av[v] = _mm512_setzero_si512();
  }
  for (int64_t t0 = 0; t0 < t_out; t0 += conv1d_tile_rows) {
    const float* rows[conv1d_tile_rows];
#  pragma GCC unroll 8
    for (int r = 0; r < conv1d_tile_rows; ++r)
      rows[r] = xs + std::min<int64_t>(t0 + r, t_out - 1) * c_in;
    __m512 acc[conv1d_tile_rows][V];
    conv_tile_accumulate<V>(rows, 1, 0, kd, wp + kd * col0, acc);
#  pragma GCC unroll 8
    for (int r = 0; r < conv1d_tile_rows; ++r) {
      int64_t t = t0 + r;
      if (t >= t_out)
        break;
      if (t == 0) {
#  pragma GCC unroll 4
        for (int v = 0; v < V; ++v)
          bv[v] = acc[r][v];
        continue;
      }
      __m512i tv = _mm512_set1_epi32(static_cast<int>(t));
#  pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        // Strictly greater, NaN never wins: the first maximum is kept, as max_over_time.
        __mmask16 m = _mm512_cmp_ps_mask(acc[r][v], bv[v], _CMP_GT_OQ);
        bv[v] = _mm512_mask_mov_ps(bv[v], m, acc[r][v]);
        av[v] = _mm512_mask_mov_epi32(av[v], m, tv);
      }
    }
  }
  for (int v = 0; v < V; ++v) {
    _mm512_storeu_ps(best + col0 + 16 * v, bv[v]);
    _mm512_storeu_si512(reinterpret_cast<void*>(arg + col0 + 16 * v), av[v]);
  }
}

// --- AVX2 (CPUs without AVX-512) ---------------------------------------------------------
// The same packed blocks, each as sub-blocks of 8 V filters: V = 3 for a 48-wide block (4
// windows a tile: 12 accumulators, 3 weight vectors and a broadcast fill the 16 ymm
// registers), V = 2 for 32 and 16 (6 windows a tile). Every loop over a tile's rows or
// vectors is unrolled: an accumulator indexed at run time would live in memory, and GCC then
// stores it on every step of the k loop.

/// acc[r][v] = window(rows[r]) . columns [8 v, 8 v + 8) of a panel [nseg * len, width] (row
/// stride width floats), a window being nseg segments of len contiguous floats, segment s at
/// rows[r] + s * stride (as conv_tile_accumulate).
template <int R, int V>
__attribute__((target("avx2,fma"), always_inline)) inline void conv_tile_accumulate_avx2(
  const float* const* rows, int64_t nseg, int64_t stride, int64_t len, const float* panel,
  int64_t width, __m256 (&acc)[R][V]) {
#  pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#  pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      acc[r][v] = _mm256_setzero_ps();
  for (int64_t s = 0; s < nseg; ++s) {
    const float* x[R];
#  pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      x[r] = rows[r] + s * stride;
    const float* ps = panel + s * len * width;
    for (int64_t kk = 0; kk < len; ++kk) {
      const float* wr = ps + kk * width;
      __m256 wv[V];
#  pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
        wv[v] = _mm256_loadu_ps(wr + 8 * v);
#  pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        __m256 xb = _mm256_broadcast_ss(x[r] + kk);
#  pragma GCC unroll 4
        for (int v = 0; v < V; ++v)
          acc[r][v] = _mm256_fmadd_ps(xb, wv[v], acc[r][v]);
      }
    }
  }
}

/// Stores acc rows [0, n) to out[r] + c0 for V vectors, clipped to c_out, plus bias.
template <int R, int V>
__attribute__((target("avx2,fma"), always_inline)) inline void conv_tile_store_avx2(
  const __m256 (&acc)[R][V], int64_t n, float* const* out, int64_t c0, int64_t c_out,
  const float* bias) {
#  pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    __m256i mask = first_lanes(c_out - c0 - 8 * v);
    __m256 bv = bias ? _mm256_maskload_ps(bias + c0 + 8 * v, mask) : _mm256_setzero_ps();
#  pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      if (r < n)
        _mm256_maskstore_ps(out[r] + c0 + 8 * v, mask, _mm256_add_ps(acc[r][v], bv));
  }
}

/// conv2d_tile_store for AVX2: a strip of up to 8 pixels as two tiles of 4 windows, the block
/// [col0, col0 + width) as sub-blocks of 8 V filters.
template <int V>
__attribute__((target("avx2,fma"))) void conv2d_tile_store_avx2(
  const float* const* rows, int64_t n, int64_t kh, int64_t stride, int64_t len, const float* wp,
  int64_t col0, int64_t width, int64_t c_out, const float* bias, float* const* out) {
  for (int64_t sub = 0; sub < width && col0 + sub < c_out; sub += 8 * V)
    for (int half = 0; half < conv1d_tile_rows && half < n; half += 4) {
      __m256 acc[4][V];
      conv_tile_accumulate_avx2<4, V>(rows + half, kh, stride, len, wp + kh * len * col0 + sub,
                                      width, acc);
      conv_tile_store_avx2<4, V>(acc, std::min<int64_t>(4, n - half), out + half, col0 + sub,
                                 c_out, bias);
    }
}

/// conv1d_tiles_store for AVX2: the block [col0, col0 + width) as sub-blocks of 8 V filters,
/// R windows a tile.
template <int R, int V>
__attribute__((target("avx2,fma"))) void conv1d_tiles_store_avx2(
  const float* xs, int64_t c_in, int64_t kd, int64_t t_out, const float* wp, int64_t col0,
  int64_t width, int64_t c_out, const float* bias, float* ys) {
  for (int64_t sub = 0; sub < width; sub += 8 * V) {
    const int64_t c0 = col0 + sub;
    if (c0 >= c_out)
      break;
    for (int64_t t0 = 0; t0 < t_out; t0 += R) {
      const float* rows[R];
#  pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        rows[r] = xs + std::min<int64_t>(t0 + r, t_out - 1) * c_in;
      float* out[R];
#  pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        out[r] = ys + (t0 + r) * c_out;
      __m256 acc[R][V];
      conv_tile_accumulate_avx2<R, V>(rows, 1, 0, kd, wp + kd * col0 + sub, width, acc);
      conv_tile_store_avx2<R, V>(acc, std::min<int64_t>(R, t_out - t0), out, c0, c_out, bias);
    }
  }
}

/// conv1d_tiles_max for AVX2 (the same first maximum and its t; NaN never wins).
template <int R, int V>
__attribute__((target("avx2,fma"))) void conv1d_tiles_max_avx2(const float* xs, int64_t c_in,
                                                               int64_t kd, int64_t t_out,
                                                               const float* wp, int64_t col0,
                                                               int64_t width, float* best,
                                                               int32_t* arg) {
  for (int64_t sub = 0; sub < width; sub += 8 * V) {
    __m256 bv[V];
    __m256 av[V]; // the arg-max as int32 lanes, kept in float registers for blendv
#  pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      bv[v] = _mm256_setzero_ps();
      av[v] = _mm256_setzero_ps();
    }
    for (int64_t t0 = 0; t0 < t_out; t0 += R) {
      const float* rows[R];
#  pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        rows[r] = xs + std::min<int64_t>(t0 + r, t_out - 1) * c_in;
      __m256 acc[R][V];
      conv_tile_accumulate_avx2<R, V>(rows, 1, 0, kd, wp + kd * col0 + sub, width, acc);
#  pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const int64_t t = t0 + r;
        if (t >= t_out)
          break;
        if (t == 0) {
#  pragma GCC unroll 4
          for (int v = 0; v < V; ++v)
            bv[v] = acc[r][v];
          continue;
        }
        __m256 tv = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(t)));
#  pragma GCC unroll 4
        for (int v = 0; v < V; ++v) {
          // Strictly greater, NaN never wins: the first maximum is kept, as max_over_time.
          __m256 m = _mm256_cmp_ps(acc[r][v], bv[v], _CMP_GT_OQ);
          bv[v] = _mm256_blendv_ps(bv[v], acc[r][v], m);
          av[v] = _mm256_blendv_ps(av[v], tv, m);
        }
      }
    }
#  pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      _mm256_storeu_ps(best + col0 + sub + 8 * v, bv[v]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(arg + col0 + sub + 8 * v),
                          _mm256_castps_si256(av[v]));
    }
  }
}

/// conv1d_dw_tile for AVX2: RK filters x V vectors of 8 window positions from k0; Masked:
/// the last vector may pass kd.
template <int RK, int V, bool Masked>
__attribute__((target("avx2,fma"))) void conv1d_dw_tile_avx2(const float* xs, int64_t c_in,
                                                             int64_t kd, const float* dys,
                                                             int64_t c_out, int64_t n, int64_t o0,
                                                             int64_t k0, float* dwt) {
  __m256i mask[V];
#  pragma GCC unroll 4
  for (int v = 0; v < V; ++v)
    mask[v] = first_lanes(kd - k0 - 8 * v);
  __m256 acc[RK][V];
#  pragma GCC unroll 8
  for (int i = 0; i < RK; ++i)
#  pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      acc[i][v] = _mm256_setzero_ps();
  const float* xr = xs + k0;
  const float* dr = dys + o0;
  for (int64_t t = 0; t < n; ++t, xr += c_in, dr += c_out) {
    __m256 xv[V];
#  pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      xv[v] = Masked ? _mm256_maskload_ps(xr + 8 * v, mask[v]) : _mm256_loadu_ps(xr + 8 * v);
#  pragma GCC unroll 8
    for (int i = 0; i < RK; ++i) {
      __m256 g = _mm256_broadcast_ss(dr + i);
#  pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
        acc[i][v] = _mm256_fmadd_ps(g, xv[v], acc[i][v]);
    }
  }
#  pragma GCC unroll 8
  for (int i = 0; i < RK; ++i)
#  pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      float* o = dwt + (o0 + i) * kd + k0 + 8 * v;
      _mm256_maskstore_ps(o, mask[v], _mm256_add_ps(_mm256_maskload_ps(o, mask[v]), acc[i][v]));
    }
}

/// conv1d_dw_tile_avx2<RK, ...> across kd: 3 vectors at a time, the rest masked.
template <int RK>
__attribute__((target("avx2,fma"))) void conv1d_dw_rows_avx2(const float* xs, int64_t c_in,
                                                             int64_t kd, const float* dys,
                                                             int64_t c_out, int64_t n, int64_t o0,
                                                             float* dwt) {
  int64_t k0 = 0;
  for (; k0 + 24 <= kd; k0 += 24)
    conv1d_dw_tile_avx2<RK, 3, false>(xs, c_in, kd, dys, c_out, n, o0, k0, dwt);
  if (k0 + 16 < kd)
    conv1d_dw_tile_avx2<RK, 3, true>(xs, c_in, kd, dys, c_out, n, o0, k0, dwt);
  else if (k0 + 8 < kd)
    conv1d_dw_tile_avx2<RK, 2, true>(xs, c_in, kd, dys, c_out, n, o0, k0, dwt);
  else if (k0 < kd)
    conv1d_dw_tile_avx2<RK, 1, true>(xs, c_in, kd, dys, c_out, n, o0, k0, dwt);
}

/// conv1d_weight_grad for AVX2: filters 4 at a time (12 accumulators), then 2 and 1, over
/// chunks of 64 time steps: a tile uses 24 of a row's window positions and 4 of its dy
/// values, so every tile passing over a chunk's rows while they are cached beats each tile
/// streaming the whole sequence (TextCNN's k = 4 backward on one 2-core AVX2 VM, best of 60:
/// 2.78-2.90 ms against 2.96-3.23 whole, 3.2-3.5 with chunks of 32, 4.0 with 16).
__attribute__((target("avx2,fma"))) inline void conv1d_weight_grad_avx2(
  const float* xs, int64_t c_in, int64_t kd, const float* dys, int64_t c_out, int64_t n,
  float* dwt) {
  constexpr int64_t t_chunk = 64;
  for (int64_t t0 = 0; t0 < n; t0 += t_chunk) {
    const int64_t nc = std::min(t_chunk, n - t0);
    const float* xc = xs + t0 * c_in;
    const float* dc = dys + t0 * c_out;
    int64_t o0 = 0;
    for (; o0 + 4 <= c_out; o0 += 4)
      conv1d_dw_rows_avx2<4>(xc, c_in, kd, dc, c_out, nc, o0, dwt);
    if (o0 + 2 <= c_out) {
      conv1d_dw_rows_avx2<2>(xc, c_in, kd, dc, c_out, nc, o0, dwt);
      o0 += 2;
    }
    if (o0 < c_out)
      conv1d_dw_rows_avx2<1>(xc, c_in, kd, dc, c_out, nc, o0, dwt);
  }
}
#endif

/// Whether the AVX2 tiles run: no AVX-512 tiles, and detail::use_avx2_kernels().
inline bool conv1d_tile_avx2() {
#ifdef COMB_CONV1D_TILE_AVX512
  return !use_avx512_kernels() && use_avx2_kernels();
#else
  return false;
#endif
}

/// Whether either kind of tile runs (conv1d's forward, conv1d_max, the valid backward).
inline bool conv1d_tiles_available() {
  return conv1d_tile_avx512() || conv1d_tile_avx2();
}

#ifdef COMB_CONV1D_TILE_AVX512
/// The windows t = 0 .. t_out - 1 of one sequence against the block at col0 (width
/// conv1d_block_width), stored into ys [t_out, c_out] clipped to c_out, plus bias (nullptr:
/// none): the AVX-512 tiles or the AVX2 ones.
inline void conv1d_store_block(const float* xs, int64_t c_in, int64_t kd, int64_t t_out,
                               const float* wp, int64_t col0, int64_t width, int64_t c_out,
                               const float* bias, float* ys) {
  if (conv1d_tile_avx512()) {
    switch (width / 16) {
    case 3:
      conv1d_tiles_store<3>(xs, c_in, kd, t_out, wp, col0, c_out, bias, ys);
      break;
    case 2:
      conv1d_tiles_store<2>(xs, c_in, kd, t_out, wp, col0, c_out, bias, ys);
      break;
    default:
      conv1d_tiles_store<1>(xs, c_in, kd, t_out, wp, col0, c_out, bias, ys);
      break;
    }
  } else if (width % 24 == 0) {
    conv1d_tiles_store_avx2<4, 3>(xs, c_in, kd, t_out, wp, col0, width, c_out, bias, ys);
  } else {
    conv1d_tiles_store_avx2<6, 2>(xs, c_in, kd, t_out, wp, col0, width, c_out, bias, ys);
  }
}

/// The max over windows for the block at col0 (width conv1d_block_width): the AVX-512
/// tiles or the AVX2 ones.
inline void conv1d_max_block(const float* xs, int64_t c_in, int64_t kd, int64_t t_out,
                             const float* wp, int64_t col0, int64_t width, float* best,
                             int32_t* arg) {
  if (conv1d_tile_avx512()) {
    switch (width / 16) {
    case 3:
      conv1d_tiles_max<3>(xs, c_in, kd, t_out, wp, col0, best, arg);
      break;
    case 2:
      conv1d_tiles_max<2>(xs, c_in, kd, t_out, wp, col0, best, arg);
      break;
    default:
      conv1d_tiles_max<1>(xs, c_in, kd, t_out, wp, col0, best, arg);
      break;
    }
  } else if (width % 24 == 0) {
    conv1d_tiles_max_avx2<4, 3>(xs, c_in, kd, t_out, wp, col0, width, best, arg);
  } else {
    conv1d_tiles_max_avx2<6, 2>(xs, c_in, kd, t_out, wp, col0, width, best, arg);
  }
}

/// A strip of up to 8 output pixels of a dense 2-D convolution (conv2d_tile_store) against the
/// block at col0 (width conv1d_block_width): the AVX-512 tiles or the AVX2 ones.
inline void conv2d_store_strip(const float* const* rows, int64_t n, int64_t kh, int64_t stride,
                               int64_t len, const float* wp, int64_t col0, int64_t width,
                               int64_t c_out, const float* bias, float* const* out) {
  if (conv1d_tile_avx512()) {
    switch (width / 16) {
    case 3:
      conv2d_tile_store<3>(rows, n, kh, stride, len, wp, col0, c_out, bias, out);
      break;
    case 2:
      conv2d_tile_store<2>(rows, n, kh, stride, len, wp, col0, c_out, bias, out);
      break;
    default:
      conv2d_tile_store<1>(rows, n, kh, stride, len, wp, col0, c_out, bias, out);
      break;
    }
  } else if (width % 24 == 0) {
    conv2d_tile_store_avx2<3>(rows, n, kh, stride, len, wp, col0, width, c_out, bias, out);
  } else {
    conv2d_tile_store_avx2<2>(rows, n, kh, stride, len, wp, col0, width, c_out, bias, out);
  }
}

/// conv1d_weight_grad on the AVX-512 tiles or the AVX2 ones.
inline void conv1d_weight_grad_tiles(const float* xs, int64_t c_in, int64_t kd, const float* dys,
                                     int64_t c_out, int64_t n, float* dwt) {
  if (conv1d_tile_avx512())
    conv1d_weight_grad(xs, c_in, kd, dys, c_out, n, dwt);
  else
    conv1d_weight_grad_avx2(xs, c_in, kd, dys, c_out, n, dwt);
}
#endif

} // namespace comb::kernels::detail
