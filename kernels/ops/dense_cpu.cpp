// Fast dense layer: OpenBLAS sgemm (bias broadcast into C first, beta = 1), gradients as
// two sgemms and a column sum. Narrow outputs (a classifier head: out <= 16) skip sgemm,
// which runs such shapes at a fraction of its speed: blocks of 8 rows accumulate all
// outputs in one AVX-512 register each, rows split across threads.
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
