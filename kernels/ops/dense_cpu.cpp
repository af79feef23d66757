// Fast dense layer. With AVX-512 (and at least 8 rows): Comb's own GEMM (w packed per call
// into panels of 48 columns, register tiles of 8 rows x 48, bias added in the store; it ran
// 186 against OpenBLAS sgemm's 100 GFLOP/s on one thread of the shared 2-core EPYC, by
// CPU time at load 13, for 1200 x 784 -> 512). Otherwise OpenBLAS sgemm
// (bias broadcast into C first, beta = 1). Gradients: two sgemms and a column sum. Narrow
// outputs (a classifier head: out <= 16) skip both, as sgemm runs such shapes at a fraction
// of its speed: blocks of 8 rows accumulate all outputs in one AVX-512 register each, rows
// split across threads.
#include "kernels/ops/dense.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"
#include "kernels/detail/blas.hpp"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#  include <immintrin.h>
#  define COMB_DENSE_AVX512 1
#endif

namespace comb::kernels {

namespace {

constexpr int64_t narrow_max = 16;

#ifdef COMB_DENSE_AVX512
/// y rows [r0, r1) of x [., in] w [in, out] + bias, out <= 16.
__attribute__((target("avx512f"))) void narrow_rows_avx512(const float* x, int64_t r0, int64_t r1,
                                                           int64_t in, const float* w, int64_t out,
                                                           const float* bias, float* y) {
  const __mmask16 m = static_cast<__mmask16>((1u << out) - 1);
  const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias) : _mm512_setzero_ps();
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8) {
    __m512 acc[8];
#  pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      acc[i] = b;
    for (int64_t k = 0; k < in; ++k) {
      __m512 wv = _mm512_maskz_loadu_ps(m, w + k * out);
#  pragma GCC unroll 8
      for (int i = 0; i < 8; ++i)
        acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(x[(r + i) * in + k]), wv, acc[i]);
    }
#  pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      _mm512_mask_storeu_ps(y + (r + i) * out, m, acc[i]);
  }
  for (; r < r1; ++r) {
    __m512 acc = b;
    for (int64_t k = 0; k < in; ++k)
      acc = _mm512_fmadd_ps(_mm512_set1_ps(x[r * in + k]), _mm512_maskz_loadu_ps(m, w + k * out),
                            acc);
    _mm512_mask_storeu_ps(y + r * out, m, acc);
  }
}
#endif

COMB_CLONES
void narrow_rows_generic(const float* x, int64_t r0, int64_t r1, int64_t in, const float* w,
                         int64_t out, const float* bias, float* y) {
  for (int64_t r = r0; r < r1; ++r) {
    float acc[narrow_max];
    for (int64_t o = 0; o < out; ++o)
      acc[o] = bias ? bias[o] : 0.0f;
    for (int64_t k = 0; k < in; ++k)
      for (int64_t o = 0; o < out; ++o)
        acc[o] += x[r * in + k] * w[k * out + o];
    for (int64_t o = 0; o < out; ++o)
      y[r * out + o] = acc[o];
  }
}

void dense_narrow(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                  const float* bias, float* y) {
#ifdef COMB_DENSE_AVX512
  const bool avx512 = detail::use_avx512_kernels();
#else
  const bool avx512 = false;
#endif
  // Blocks of 8 rows, at least about 32k multiply-adds per chunk.
  int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(8 * in * out, 1));
  detail::parallel_range((b + 7) / 8, grain, [&](int64_t c0, int64_t c1) {
    int64_t r0 = c0 * 8, r1 = std::min(b, c1 * 8);
#ifdef COMB_DENSE_AVX512
    if (avx512) {
      narrow_rows_avx512(x, r0, r1, in, w, out, bias, y);
      return;
    }
#endif
    narrow_rows_generic(x, r0, r1, in, w, out, bias, y);
  });
}

#ifdef COMB_DENSE_AVX512
/// The AVX-512 GEMM behind dense: y [b, out] = x [b, in] w [in, out] + bias. w is packed per
/// call into panels of 48 columns ([in, 48] each, zero columns past out); a tile is 8 rows
/// of x (each value broadcast) x the panel's 1 to 3 vectors, 24 accumulators over a block of
/// up to 256 of the inputs; the blocks of inputs go outermost in each thread's rows, so
/// that the packed block of w (<= 256 x out floats) stays in L2 and the tile's 8 rows of x
/// in L1 while every panel passes. Each output's sum runs in the same order whatever the
/// split across threads.
constexpr int64_t gemm_nr = 48;
constexpr int64_t gemm_kc = 256;

void pack_panels(const float* w, int64_t in, int64_t out, float* wp) {
  const int64_t panels = (out + gemm_nr - 1) / gemm_nr;
  detail::parallel_range(panels * in, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t p = r / in, k = r % in, col0 = p * gemm_nr;
      int64_t real = std::min(gemm_nr, out - col0);
      float* dst = wp + r * gemm_nr;
      std::memcpy(dst, w + k * out + col0, static_cast<size_t>(real) * sizeof(float));
      std::fill(dst + real, dst + gemm_nr, 0.0f);
    }
  });
}

/// Rows [r, r + n) (n <= 8) x panel columns [col0, col0 + 16 V) over inputs [k0, k0 + kc):
/// first: y = the product, else y += it; last: + bias.
template <int V>
__attribute__((target("avx512f"))) void gemm_tile(const float* x, int64_t in, int64_t r,
                                                  int64_t n, const float* panel, int64_t k0,
                                                  int64_t kc, bool first, bool last,
                                                  const float* bias, int64_t col0, int64_t out,
                                                  float* y) {
  const float* a[8];
#  pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)
    a[i] = x + (r + std::min<int64_t>(i, n - 1)) * in + k0;
  __m512 acc[8][V];
#  pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)
#  pragma GCC unroll 3
    for (int v = 0; v < V; ++v)
      acc[i][v] = _mm512_setzero_ps();
  const float* bp = panel + k0 * gemm_nr;
  for (int64_t k = 0; k < kc; ++k, bp += gemm_nr) {
    __m512 bv[V];
#  pragma GCC unroll 3
    for (int v = 0; v < V; ++v)
      bv[v] = _mm512_load_ps(bp + 16 * v);
#  pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      __m512 av = _mm512_set1_ps(a[i][k]);
#  pragma GCC unroll 3
      for (int v = 0; v < V; ++v)
        acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
  }
  __mmask16 mask[V];
  __m512 bias_v[V];
#  pragma GCC unroll 3
  for (int v = 0; v < V; ++v) {
    int64_t left = std::clamp<int64_t>(out - col0 - 16 * v, 0, 16);
    mask[v] = static_cast<__mmask16>((1u << left) - 1);
    bias_v[v] = last && bias ? _mm512_maskz_loadu_ps(mask[v], bias + col0 + 16 * v)
                             : _mm512_setzero_ps();
  }
#  pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    if (i >= n)
      break;
    float* yr = y + (r + i) * out + col0;
#  pragma GCC unroll 3
    for (int v = 0; v < V; ++v) {
      __m512 sum = _mm512_add_ps(acc[i][v], bias_v[v]);
      if (!first)
        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask[v], yr + 16 * v));
      _mm512_mask_storeu_ps(yr + 16 * v, mask[v], sum);
    }
  }
}

void dense_gemm_avx512(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                       const float* bias, float* y) {
  const int64_t panels = (out + gemm_nr - 1) / gemm_nr;
  float* wp = detail::scratch(static_cast<size_t>(panels * in * gemm_nr), 1);
  pack_panels(w, in, out, wp);
  const int64_t nk = (in + gemm_kc - 1) / gemm_kc, kc = (in + nk - 1) / nk;
  const int64_t tiles = (b + 7) / 8;
  // About 8 tiles per chunk at least (a chunk re-reads the packed block of w from L2).
  detail::parallel_range(tiles, 8, [&](int64_t t0, int64_t t1) {
    for (int64_t k0 = 0; k0 < in; k0 += kc) {
      const int64_t kn = std::min(kc, in - k0);
      const bool first = k0 == 0, last = k0 + kn == in;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r = t * 8, n = std::min<int64_t>(8, b - r);
        for (int64_t p = 0; p < panels; ++p) {
          const int64_t col0 = p * gemm_nr;
          const float* panel = wp + p * in * gemm_nr;
          switch ((std::min(gemm_nr, out - col0) + 15) / 16) {
          case 3:
            gemm_tile<3>(x, in, r, n, panel, k0, kn, first, last, bias, col0, out, y);
            break;
          case 2:
            gemm_tile<2>(x, in, r, n, panel, k0, kn, first, last, bias, col0, out, y);
            break;
          default:
            gemm_tile<1>(x, in, r, n, panel, k0, kn, first, last, bias, col0, out, y);
            break;
          }
        }
      }
    }
  });
}
#endif

COMB_CLONES
void column_sums(const float* a, int64_t rows, int64_t c, float* out) {
  std::memset(out, 0, static_cast<size_t>(c) * sizeof(float));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j)
      out[j] += a[r * c + j];
}

} // namespace

void dense_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
               const float* bias, float* y) {
  if (in > 0 && out <= narrow_max) {
    dense_narrow(x, b, in, w, out, bias, y);
    return;
  }
#ifdef COMB_DENSE_AVX512
  if (in > 0 && b >= 8 && detail::use_avx512_kernels()) {
    dense_gemm_avx512(x, b, in, w, out, bias, y);
    return;
  }
#endif
  if (bias)
    for (int64_t i = 0; i < b; ++i)
      std::memcpy(y + i * out, bias, static_cast<size_t>(out) * sizeof(float));
  if (in == 0) {
    if (!bias)
      std::memset(y, 0, static_cast<size_t>(b * out) * sizeof(float));
    return;
  }
  detail::sgemm(/*trans_a=*/false, /*trans_b=*/false, b, out, in, 1.0f, x, in, w, out,
                bias ? 1.0f : 0.0f, y, out);
}

void dense_backward_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                        const float* dy, float* dx, float* dw, float* dbias) {
  if (b == 0) {
    std::memset(dw, 0, static_cast<size_t>(in * out) * sizeof(float));
  } else {
    detail::sgemm(/*trans_a=*/true, /*trans_b=*/false, in, out, b, 1.0f, x, in, dy, out, 0.0f, dw,
                  out);
  }
  if (dx) {
    if (out == 0)
      std::memset(dx, 0, static_cast<size_t>(b * in) * sizeof(float));
    else
      detail::sgemm(/*trans_a=*/false, /*trans_b=*/true, b, in, out, 1.0f, dy, out, w, out, 0.0f,
                    dx, in);
  }
  if (dbias)
    column_sums(dy, b, out, dbias);
}

} // namespace comb::kernels
