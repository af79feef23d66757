// Fast CPU fused GEMM; see fused_gemm.hpp (the reference is fused_gemm_ref.cpp).
#include "kernels/ops/fused_gemm.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <algorithm>
#include <cstring>
// GCC 12 warns inside its own _mm512_max_ps/_mm512_min_ps (_mm512_undefined_ps, GCC bug
// 105593); the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace comb::kernels {

packed_gemm_b pack_gemm_b(const float* b, int k, int n) {
  packed_gemm_b p;
  p.k = k;
  p.n = n;
  int panels = (n + gemm_panel - 1) / gemm_panel;
  p.data.assign(static_cast<size_t>(panels) * gemm_panel * k, 0.0f);
  for (int pn = 0; pn < panels; ++pn)
    for (int kk = 0; kk < k; ++kk)
      for (int j = 0; j < gemm_panel && pn * gemm_panel + j < n; ++j)
        p.data[(static_cast<size_t>(pn) * k + kk) * gemm_panel + j] =
          b[static_cast<size_t>(kk) * n + pn * gemm_panel + j];
  return p;
}

namespace {

// Rows of A per micro-tile.
constexpr int mr = 8;

/// The epilogue one value at a time: c[j] = clamp(acc[j] + bias[j] + res[j]) for j < cols
/// (bias, res: nullptr for none).
inline void store_row(const float* acc, int cols, const float* bias, const float* res, float lo,
                      float hi, float* c) {
  for (int j = 0; j < cols; ++j) {
    float v = acc[j] + (bias ? bias[j] : 0.0f) + (res ? res[j] : 0.0f);
    c[j] = std::min(std::max(v, lo), hi);
  }
}

/// Portable micro-kernel: rows x (up to) one panel.
void tile_generic(const float* a, int rows, int64_t lda, const float* bp, int k, int cols,
                  const float* bias, const float* res, int64_t ldr, float lo, float hi, float* c,
                  int64_t ldc) {
  for (int i = 0; i < rows; ++i) {
    float acc[gemm_panel] = {};
    const float* ai = a + i * lda;
    for (int kk = 0; kk < k; ++kk) {
      float av = ai[kk];
      const float* bk = bp + static_cast<size_t>(kk) * gemm_panel;
      for (int j = 0; j < gemm_panel; ++j)
        acc[j] += av * bk[j];
    }
    store_row(acc, cols, bias, res ? res + i * ldr : nullptr, lo, hi, c + i * ldc);
  }
}

template <int Rows>
__attribute__((target("avx512f,fma"))) void tile_avx512(const float* a, int64_t lda,
                                                        const float* bp, int k, int cols,
                                                        const float* bias, const float* res,
                                                        int64_t ldr, float lo, float hi, float* c,
                                                        int64_t ldc) {
  __m512 acc0[Rows], acc1[Rows];
#pragma GCC unroll 8
  for (int i = 0; i < Rows; ++i) {
    acc0[i] = _mm512_setzero_ps();
    acc1[i] = _mm512_setzero_ps();
  }
  for (int kk = 0; kk < k; ++kk) {
    __m512 b0 = _mm512_loadu_ps(bp + kk * gemm_panel);
    __m512 b1 = _mm512_loadu_ps(bp + kk * gemm_panel + 16);
#pragma GCC unroll 8
    for (int i = 0; i < Rows; ++i) {
      __m512 av = _mm512_set1_ps(a[i * lda + kk]);
      acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);
    }
  }
  __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF)
                            : (cols > 16 ? __mmask16((1u << (cols - 16)) - 1) : __mmask16(0));
  __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < Rows; ++i) {
    __m512 v0 = _mm512_add_ps(acc0[i], bias0);
    __m512 v1 = _mm512_add_ps(acc1[i], bias1);
    if (res) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, res + i * ldr));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, res + i * ldr + 16));
    }
    v0 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, v0)); // operand order keeps NaN
    v1 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, v1));
    _mm512_mask_storeu_ps(c + i * ldc, m0, v0);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, v1);
  }
}

/// AVX2: 16 columns (two vectors) of R <= 6 rows: 12 accumulators, the two B vectors and a
/// broadcast fill the 16 registers.
template <int R>
__attribute__((target("avx2,fma"))) void half_tile_avx2(const float* a, int64_t lda,
                                                        const float* bp, int k, int cols,
                                                        const float* bias, const float* res,
                                                        int64_t ldr, float lo, float hi, float* c,
                                                        int64_t ldc) {
  __m256 acc0[R], acc1[R];
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    acc0[i] = _mm256_setzero_ps();
    acc1[i] = _mm256_setzero_ps();
  }
  for (int kk = 0; kk < k; ++kk) {
    __m256 b0 = _mm256_loadu_ps(bp + kk * gemm_panel);
    __m256 b1 = _mm256_loadu_ps(bp + kk * gemm_panel + 8);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      __m256 av = _mm256_broadcast_ss(a + i * lda + kk);
      acc0[i] = _mm256_fmadd_ps(av, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(av, b1, acc1[i]);
    }
  }
  if (cols >= 16) {
    __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    __m256 bias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    __m256 bias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      __m256 v0 = _mm256_add_ps(acc0[i], bias0);
      __m256 v1 = _mm256_add_ps(acc1[i], bias1);
      if (res) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(res + i * ldr));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(res + i * ldr + 8));
      }
      v0 = _mm256_min_ps(vhi, _mm256_max_ps(vlo, v0)); // operand order keeps NaN
      v1 = _mm256_min_ps(vhi, _mm256_max_ps(vlo, v1));
      _mm256_storeu_ps(c + i * ldc, v0);
      _mm256_storeu_ps(c + i * ldc + 8, v1);
    }
    return;
  }
  // The last panel's columns: the same epilogue one value at a time. The accumulators are
  // stored in an unrolled loop: indexed by a run-time row they would live in memory, and GCC
  // then stores all twelve on every step of the k loop (half the kernel's speed).
  float acc[R][16];
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    _mm256_storeu_ps(acc[i], acc0[i]);
    _mm256_storeu_ps(acc[i] + 8, acc1[i]);
  }
  for (int i = 0; i < R; ++i)
    store_row(acc[i], cols, bias, res ? res + i * ldr : nullptr, lo, hi, c + i * ldc);
}

using half_tile_fn = void (*)(const float*, int64_t, const float*, int, int, const float*,
                              const float*, int64_t, float, float, float*, int64_t);
constexpr half_tile_fn avx2_half_tiles[7] = {nullptr,           half_tile_avx2<1>,
                                             half_tile_avx2<2>, half_tile_avx2<3>,
                                             half_tile_avx2<4>, half_tile_avx2<5>,
                                             half_tile_avx2<6>};

/// AVX2: rows x (up to) one panel, as two halves of 16 columns, rows six at a time.
void tile_avx2(const float* a, int rows, int64_t lda, const float* bp, int k, int cols,
               const float* bias, const float* res, int64_t ldr, float lo, float hi, float* c,
               int64_t ldc) {
  for (int half = 0; half < 2; ++half) {
    int hc = std::min(16, cols - 16 * half);
    if (hc <= 0)
      break;
    int off = 16 * half;
    for (int i = 0; i < rows; i += 6) {
      int r = std::min(6, rows - i);
      avx2_half_tiles[r](a + i * lda, lda, bp + off, k, hc, bias ? bias + off : nullptr,
                         res ? res + i * ldr + off : nullptr, ldr, lo, hi, c + i * ldc + off, ldc);
    }
  }
}

using tile_fn = void (*)(const float*, int64_t, const float*, int, int, const float*, const float*,
                         int64_t, float, float, float*, int64_t);

constexpr tile_fn avx512_tiles[mr + 1] = {nullptr,        tile_avx512<1>, tile_avx512<2>,
                                          tile_avx512<3>, tile_avx512<4>, tile_avx512<5>,
                                          tile_avx512<6>, tile_avx512<7>, tile_avx512<8>};

// The hand-written AVX-512 kernels run where the CPU has AVX-512F (which brings FMA) and
// COMB_KERNELS_NO_AVX512 is not set (the _portable test runs check the fallback).
const bool have_avx512 = (__builtin_cpu_init(), detail::use_avx512_kernels());
const bool have_avx2 = !have_avx512 && detail::use_avx2_kernels();

/// Rows [m0, m1) x panels [p0, p1).
void block(const float* a, int64_t m0, int64_t m1, int64_t lda, const packed_gemm_b& b, int p0,
           int p1, const gemm_epilogue& ep, float* c, int64_t ldc) {
  const int k = b.k;
  // Row blocks outermost: a block of A stays in L1/L2 while every panel of B passes.
  constexpr int64_t row_block = 64;
  for (int64_t r0 = m0; r0 < m1; r0 += row_block) {
    int64_t r1 = std::min(m1, r0 + row_block);
    for (int pn = p0; pn < p1; ++pn) {
      const float* bp = b.data.data() + static_cast<size_t>(pn) * k * gemm_panel;
      int col0 = pn * gemm_panel;
      int cols = std::min(gemm_panel, b.n - col0);
      const float* bias = ep.bias ? ep.bias + col0 : nullptr;
      // AVX2 tiles take 6 rows (its 16 registers), the others mr.
      const int step = have_avx2 ? 6 : mr;
      for (int64_t i = r0; i < r1; i += step) {
        int rows = static_cast<int>(std::min<int64_t>(step, r1 - i));
        const float* res = ep.residual ? ep.residual + i * ep.ldr + col0 : nullptr;
        float* ci = c + i * ldc + col0;
        if (have_avx512)
          avx512_tiles[rows](a + i * lda, lda, bp, k, cols, bias, res, ep.ldr, ep.lo, ep.hi, ci,
                             ldc);
        else if (have_avx2)
          tile_avx2(a + i * lda, rows, lda, bp, k, cols, bias, res, ep.ldr, ep.lo, ep.hi, ci,
                    ldc);
        else
          tile_generic(a + i * lda, rows, lda, bp, k, cols, bias, res, ep.ldr, ep.lo, ep.hi, ci,
                       ldc);
      }
    }
  }
}

} // namespace

bool fused_gemm_uses_avx512() {
  return have_avx512;
}

void fused_gemm(const float* a, int64_t m, int64_t lda, const packed_gemm_b& b,
                const gemm_epilogue& ep, float* c, int64_t ldc) {
  if (m <= 0 || b.n <= 0)
    return;
  int panels = (b.n + gemm_panel - 1) / gemm_panel;
  int threads = detail::cpu_threads();
  double flops = 2.0 * m * b.k * b.n;
  if (threads == 1 || flops < 2e5) {
    block(a, 0, m, lda, b, 0, panels, ep, c, ldc);
    return;
  }
  // Split rows when A is tall, panels when it is short (the 7x7 layers, dense layers).
  // Several parts per thread, so that when a thread is descheduled (a shared machine) the
  // others take its share.
  if (m >= 32 * threads) {
    int64_t nparts = std::min<int64_t>(4 * threads, (m + 15) / 16);
    int64_t per = ((m + nparts - 1) / nparts + mr - 1) / mr * mr;
    nparts = (m + per - 1) / per;
    detail::parallel_for(static_cast<int>(nparts), [&](int t) {
      int64_t m0 = std::min(m, t * per), m1 = std::min(m, (t + 1) * per);
      if (m0 < m1)
        block(a, m0, m1, lda, b, 0, panels, ep, c, ldc);
    });
  } else {
    int nparts = std::min(panels, 4 * threads);
    int per = (panels + nparts - 1) / nparts;
    nparts = (panels + per - 1) / per;
    detail::parallel_for(nparts, [&](int t) {
      int p0 = std::min(panels, t * per), p1 = std::min(panels, (t + 1) * per);
      if (p0 < p1)
        block(a, 0, m, lda, b, p0, p1, ep, c, ldc);
    });
  }
}

} // namespace comb::kernels
