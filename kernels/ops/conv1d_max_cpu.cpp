// Fast conv1d_max (see conv1d_max.hpp). Forward: the weights are packed once per call to
// [k * c_in, fp] (fp = c_out rounded up to 16, zero columns); then, per sequence, tiles of
// 8 time steps x up to 3 vectors of 16 filters accumulate in 24 AVX-512 registers, reading
// each window straight from x (the k rows of a window are k * c_in contiguous floats, so
// no im2col), and fold into a running max and argmax: the convolution output never reaches
// memory. Sequences are split across threads. Without AVX-512, a plain loop over the same
// packed weights (vectorised over filters by the compiler).
// Backward: g = dy * act'(y); dbias = column sums of g; row f of dw^T [c_out, k * c_in] =
// sum over b of g[b, f] * window(b, argmax[b, f]) (threads own filters), then transposed
// into dw; window(b, argmax[b, f]) of dx += g[b, f] * row f of w^T (threads own
// sequences). Windows with g == 0 are skipped (so non-finite inputs outside the arg-max
// windows do not reach the gradients, unlike a dense conv1d backward). Sums run in a fixed
// order, so results do not depend on thread scheduling.
#include "kernels/ops/conv1d_max.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define COMB_CONV1D_MAX_AVX512 1
#endif

namespace comb::kernels {

namespace {

constexpr int tile_rows = 8;

float act_of(float v, activation a) {
  switch (a) {
    case activation::relu:
      return std::max(v, 0.0f); // NaN stays NaN
    case activation::relu6:
      return std::min(std::max(v, 0.0f), 6.0f);
    default:
      return v;
  }
}

float act_grad(float y, activation a) {
  switch (a) {
    case activation::relu:
      return y > 0 ? 1.0f : 0.0f;
    case activation::relu6:
      return y > 0 && y < 6 ? 1.0f : 0.0f;
    default:
      return 1.0f;
  }
}

#ifdef COMB_CONV1D_MAX_AVX512
/// Max over time of one sequence's convolution for V vectors of 16 filters: wp points at
/// the block's first column of the packed weights (row stride fp), best/arg at its first
/// filter. The last tile re-reads the last window for rows past t_out and ignores them.
template <int V>
__attribute__((target("avx512f"))) void seq_block_avx512(const float* xs, int64_t c_in,
                                                          int64_t kd, int64_t t_out,
                                                          const float* wp, int64_t fp,
                                                          float* best, int32_t* arg) {
  __m512 bv[V];
  __m512i av[V];
  for (int v = 0; v < V; ++v) {
    bv[v] = _mm512_setzero_ps();
    av[v] = _mm512_setzero_si512();
  }
  for (int64_t t0 = 0; t0 < t_out; t0 += tile_rows) {
    const float* rows[tile_rows];
#pragma GCC unroll 8
    for (int r = 0; r < tile_rows; ++r)
      rows[r] = xs + std::min<int64_t>(t0 + r, t_out - 1) * c_in;
    __m512 acc[tile_rows][V];
#pragma GCC unroll 8
    for (int r = 0; r < tile_rows; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
        acc[r][v] = _mm512_setzero_ps();
    for (int64_t kk = 0; kk < kd; ++kk) {
      const float* wr = wp + kk * fp;
      __m512 wv[V];
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
        wv[v] = _mm512_load_ps(wr + 16 * v);
#pragma GCC unroll 8
      for (int r = 0; r < tile_rows; ++r) {
        __m512 xb = _mm512_set1_ps(rows[r][kk]);
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v)
          acc[r][v] = _mm512_fmadd_ps(xb, wv[v], acc[r][v]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < tile_rows; ++r) {
      int64_t t = t0 + r;
      if (t >= t_out)
        break;
      if (t == 0) {
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v)
          bv[v] = acc[r][v];
        continue;
      }
      __m512i tv = _mm512_set1_epi32(static_cast<int>(t));
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        // Strictly greater, NaN never wins: the first maximum is kept, as max_over_time.
        __mmask16 m = _mm512_cmp_ps_mask(acc[r][v], bv[v], _CMP_GT_OQ);
        bv[v] = _mm512_mask_mov_ps(bv[v], m, acc[r][v]);
        av[v] = _mm512_mask_mov_epi32(av[v], m, tv);
      }
    }
  }
  for (int v = 0; v < V; ++v) {
    _mm512_storeu_ps(best + 16 * v, bv[v]);
    _mm512_storeu_si512(reinterpret_cast<void*>(arg + 16 * v), av[v]);
  }
}
#endif

/// The same without AVX-512: one time step at a time, all fp filters in h.
COMB_CLONES
void seq_generic(const float* xs, int64_t c_in, int64_t kd, int64_t t_out, const float* wp,
                 int64_t fp, float* h, float* best, int32_t* arg) {
  for (int64_t t = 0; t < t_out; ++t) {
    const float* xr = xs + t * c_in;
    for (int64_t f = 0; f < fp; ++f)
      h[f] = 0;
    for (int64_t kk = 0; kk < kd; ++kk) {
      float xv = xr[kk];
      const float* wr = wp + kk * fp;
      for (int64_t f = 0; f < fp; ++f)
        h[f] += xv * wr[f];
    }
    for (int64_t f = 0; f < fp; ++f) {
      bool gt = t == 0 || h[f] > best[f];
      best[f] = gt ? h[f] : best[f];
      arg[f] = gt ? static_cast<int32_t>(t) : arg[f];
    }
  }
}

COMB_CLONES
void axpy(int64_t n, float a, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i)
    y[i] += a * x[i];
}

bool have_avx512() {
#ifdef COMB_CONV1D_MAX_AVX512
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
#else
  return false;
#endif
}

} // namespace

void conv1d_max_cpu(const conv1d_dims& d, const float* x, const float* w, const float* bias,
                    activation a, float* y, int32_t* argmax) {
  const int64_t kd = d.k * d.c_in, f_out = d.c_out, fp = (f_out + 15) / 16 * 16;
  float* wp = detail::scratch(static_cast<size_t>(kd * fp), 1);
  for (int64_t kk = 0; kk < kd; ++kk) {
    std::memcpy(wp + kk * fp, w + kk * f_out, static_cast<size_t>(f_out) * sizeof(float));
    std::fill(wp + kk * fp + f_out, wp + (kk + 1) * fp, 0.0f);
  }
  const bool avx512 = have_avx512();
  detail::parallel_range(d.batch, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> best(static_cast<size_t>(fp)), h(static_cast<size_t>(fp));
    std::vector<int32_t> arg(static_cast<size_t>(fp));
    for (int64_t b = b0; b < b1; ++b) {
      const float* xs = x + b * d.time * d.c_in;
      if (avx512) {
#ifdef COMB_CONV1D_MAX_AVX512
        for (int64_t v0 = 0; v0 < fp / 16; v0 += 3) {
          const float* wb = wp + 16 * v0;
          float* bb = best.data() + 16 * v0;
          int32_t* ab = arg.data() + 16 * v0;
          switch (std::min<int64_t>(3, fp / 16 - v0)) {
            case 3:
              seq_block_avx512<3>(xs, d.c_in, kd, d.t_out, wb, fp, bb, ab);
              break;
            case 2:
              seq_block_avx512<2>(xs, d.c_in, kd, d.t_out, wb, fp, bb, ab);
              break;
            default:
              seq_block_avx512<1>(xs, d.c_in, kd, d.t_out, wb, fp, bb, ab);
              break;
          }
        }
#endif
      } else {
        seq_generic(xs, d.c_in, kd, d.t_out, wp, fp, h.data(), best.data(), arg.data());
      }
      for (int64_t f = 0; f < f_out; ++f) {
        y[b * f_out + f] = act_of(best[static_cast<size_t>(f)] + (bias ? bias[f] : 0.0f), a);
        argmax[b * f_out + f] = arg[static_cast<size_t>(f)];
      }
    }
  });
}

void conv1d_max_backward_cpu(const conv1d_dims& d, const float* x, const float* w,
                             const float* y, const int32_t* argmax, const float* dy,
                             activation a, float* dx, float* dw, float* dbias) {
  const int64_t nb = d.batch, f_out = d.c_out, kd = d.k * d.c_in;
  float* g = detail::scratch(static_cast<size_t>(std::max<int64_t>(nb * f_out, 1)), 1);
  for (int64_t i = 0; i < nb * f_out; ++i)
    g[i] = dy[i] * act_grad(y[i], a);
  if (dbias) {
    std::fill(dbias, dbias + f_out, 0.0f);
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t f = 0; f < f_out; ++f)
        dbias[f] += g[b * f_out + f];
  }
  // dw^T, one row per filter, then transposed.
  float* dwt = detail::scratch(static_cast<size_t>(f_out * kd), 2);
  detail::parallel_range(f_out, 4, [&](int64_t f0, int64_t f1) {
    for (int64_t f = f0; f < f1; ++f) {
      float* row = dwt + f * kd;
      std::fill(row, row + kd, 0.0f);
      for (int64_t b = 0; b < nb; ++b) {
        float gv = g[b * f_out + f];
        if (gv != 0.0f)
          axpy(kd, gv, x + (b * d.time + argmax[b * f_out + f]) * d.c_in, row);
      }
    }
  });
  for (int64_t kk = 0; kk < kd; ++kk)
    for (int64_t f = 0; f < f_out; ++f)
      dw[kk * f_out + f] = dwt[f * kd + kk];
  if (!dx)
    return;
  float* wt = detail::scratch(static_cast<size_t>(f_out * kd), 3);
  for (int64_t kk = 0; kk < kd; ++kk)
    for (int64_t f = 0; f < f_out; ++f)
      wt[f * kd + kk] = w[kk * f_out + f];
  detail::parallel_range(nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t f = 0; f < f_out; ++f) {
        float gv = g[b * f_out + f];
        if (gv != 0.0f)
          axpy(kd, gv, wt + f * kd, dx + (b * d.time + argmax[b * f_out + f]) * d.c_in);
      }
  });
}

} // namespace comb::kernels
