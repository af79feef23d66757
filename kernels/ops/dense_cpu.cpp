// Fast dense layer. With AVX-512 (and at least 8 rows): Comb's own GEMM (the right operand
// packed per call into panels of 48 columns, or read in place when its rows hold whole
// vectors of 16 as the forward's weights do; register tiles of 8 rows x 48, bias added in
// the store; 186 against OpenBLAS sgemm's 100 GFLOP/s on one thread of the shared 2-core
// EPYC, by CPU time at load 13, for 1200 x 784 -> 512), for the forward and for both
// gradients (dw = x^T dy reading x transposed, dx = dy w^T packing w transposed). Packing
// and product run in one fork-join region, both gradients in the same one, and dbias is
// summed from dy in the pass that packs it (pack_rows_sum). dense_relu_cpu applies ReLU in the store (an MLP's hidden
// layer in one pass), and dense_relu_then_cpu hands each finished block of rows on while it
// is in cache (the MLP's narrow head and softmax run there).
// Otherwise OpenBLAS sgemm (bias broadcast into C first, beta = 1, or with ReLU the product
// and then bias and ReLU in one pass; gradients as two sgemms; dbias a column sum). Narrow
// outputs (a classifier head: out <= 16) skip both in the forward, as sgemm runs such shapes
// at a fraction of its speed: blocks of 8 rows accumulate all outputs in one AVX-512 register
// each (AVX2: tiles of 6 rows x 1 or 2 vectors of 8), rows split across threads. A narrow
// layer's backward through the ReLU below it (dense_relu_narrow_backward_cpu) runs on AVX2 as
// two passes of register tiles: the input gradient by rows, the weight and bias gradients by
// blocks of 8 columns over every row.
#include "kernels/ops/dense.hpp"

#include "kernels/ops/bias_act.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"
#include "kernels/detail/blas.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// GCC 12 warns inside its own _mm512_max_ps (_mm512_undefined_ps, GCC bug 105593); the
// warning is about the header, not this code.
#  pragma GCC diagnostic ignored "-Wuninitialized"
#  pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#  include <immintrin.h>
#  include "kernels/detail/avx2_lanes.hpp"
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
/// narrow_rows for AVX2: w packed to [in, 8 V] (zero columns past out); tiles of 6 rows x V
/// vectors of 8 outputs (at most 12 accumulators, V weight vectors and a broadcast).
template <int V>
__attribute__((target("avx2,fma"))) void narrow_rows_avx2(const float* x, int64_t r0, int64_t r1,
                                                          int64_t in, const float* wp,
                                                          int64_t out, const float* bias,
                                                          float* y) {
  __m256i mask[V];
  __m256 bv[V];
#  pragma GCC unroll 2
  for (int v = 0; v < V; ++v) {
    mask[v] = detail::first_lanes(out - 8 * v);
    bv[v] = bias ? _mm256_maskload_ps(bias + 8 * v, mask[v]) : _mm256_setzero_ps();
  }
  int64_t r = r0;
  for (; r + 6 <= r1; r += 6) {
    __m256 acc[6][V];
#  pragma GCC unroll 6
    for (int i = 0; i < 6; ++i)
#  pragma GCC unroll 2
      for (int v = 0; v < V; ++v)
        acc[i][v] = bv[v];
    for (int64_t k = 0; k < in; ++k) {
      __m256 wv[V];
#  pragma GCC unroll 2
      for (int v = 0; v < V; ++v)
        wv[v] = _mm256_loadu_ps(wp + k * 8 * V + 8 * v);
#  pragma GCC unroll 6
      for (int i = 0; i < 6; ++i) {
        __m256 xb = _mm256_broadcast_ss(x + (r + i) * in + k);
#  pragma GCC unroll 2
        for (int v = 0; v < V; ++v)
          acc[i][v] = _mm256_fmadd_ps(xb, wv[v], acc[i][v]);
      }
    }
#  pragma GCC unroll 6
    for (int i = 0; i < 6; ++i)
#  pragma GCC unroll 2
      for (int v = 0; v < V; ++v)
        _mm256_maskstore_ps(y + (r + i) * out + 8 * v, mask[v], acc[i][v]);
  }
  for (; r < r1; ++r) {
    __m256 acc[V];
#  pragma GCC unroll 2
    for (int v = 0; v < V; ++v)
      acc[v] = bv[v];
    for (int64_t k = 0; k < in; ++k) {
      __m256 xb = _mm256_broadcast_ss(x + r * in + k);
#  pragma GCC unroll 2
      for (int v = 0; v < V; ++v)
        acc[v] = _mm256_fmadd_ps(xb, _mm256_loadu_ps(wp + k * 8 * V + 8 * v), acc[v]);
    }
#  pragma GCC unroll 2
    for (int v = 0; v < V; ++v)
      _mm256_maskstore_ps(y + r * out + 8 * v, mask[v], acc[v]);
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
  const bool avx2 = !avx512 && detail::use_avx2_kernels();
  // AVX2: w with its columns padded to 8 or 16 (plain loads in the inner loop).
  const int64_t vecs = out > 8 ? 2 : 1;
  std::vector<float> wp;
  if (avx2) {
    wp.assign(static_cast<size_t>(in * 8 * vecs), 0.0f);
    for (int64_t k = 0; k < in; ++k)
      std::memcpy(wp.data() + k * 8 * vecs, w + k * out, static_cast<size_t>(out) * sizeof(float));
  }
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
    if (avx2) {
      if (vecs == 2)
        narrow_rows_avx2<2>(x, r0, r1, in, wp.data(), out, bias, y);
      else
        narrow_rows_avx2<1>(x, r0, r1, in, wp.data(), out, bias, y);
      return;
    }
#endif
    narrow_rows_generic(x, r0, r1, in, w, out, bias, y);
  });
}

#ifdef COMB_DENSE_AVX512
/// The AVX-512 GEMM behind dense and its gradients: c [m, n] = op(a) [m, kk] b [kk, n]
/// (+ bias). b is packed per call into panels of 48 columns ([kk, 48] each, zero columns
/// past n); a tile is 8 rows of op(a) (each value broadcast) x the panel's 1 to 3 vectors,
/// 24 accumulators over a block of up to 256 of kk; the blocks of kk go outermost in each
/// thread's rows, so that the packed block of b (<= 256 x n floats) stays in L2 and the
/// tile's rows of a in L1 while every panel passes. Each output's sum runs in the same order
/// whatever the split across threads.
constexpr int64_t gemm_nr = 48;
constexpr int64_t gemm_kc = 256;
constexpr int64_t gemm_min_tiles = 4;

inline void cpu_relax() {
  __builtin_ia32_pause();
}

/// Rows [r, r + n) (n <= 8) of op(a) x panel columns [col0, col0 + 16 V) over kk
/// [k0, k0 + kc): first: c = the product, else c += it; last: + bias; relu (only with last):
/// then max(0, .). op(a)'s element (i, k) is a[i * lda + k], or a[k * lda + i] when Trans;
/// the panel's row k starts at panel + k * ldp (gemm_nr when packed).
template <int V, bool Trans>
__attribute__((target("avx512f"))) void gemm_tile(const float* a, int64_t lda, int64_t r, int64_t n,
                                                  const float* panel, int64_t ldp, int64_t k0,
                                                  int64_t kc,
                                                  bool first, bool last, bool relu,
                                                  const float* bias, int64_t col0, int64_t ldc,
                                                  float* c) {
  const float* ar[8];
#  pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    int64_t row = r + std::min<int64_t>(i, n - 1);
    ar[i] = Trans ? a + k0 * lda + row : a + row * lda + k0;
  }
  const int64_t step = Trans ? lda : 1;
  __m512 acc[8][V];
#  pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)
#  pragma GCC unroll 3
    for (int v = 0; v < V; ++v)
      acc[i][v] = _mm512_setzero_ps();
  const float* bp = panel + k0 * ldp;
  for (int64_t k = 0; k < kc; ++k, bp += ldp) {
    __m512 bv[V];
#  pragma GCC unroll 3
    for (int v = 0; v < V; ++v)
      bv[v] = _mm512_loadu_ps(bp + 16 * v);
    const int64_t off = k * step;
#  pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      __m512 av = _mm512_set1_ps(ar[i][off]);
#  pragma GCC unroll 3
      for (int v = 0; v < V; ++v)
        acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
  }
  __mmask16 mask[V];
  __m512 bias_v[V];
#  pragma GCC unroll 3
  for (int v = 0; v < V; ++v) {
    int64_t left = std::clamp<int64_t>(ldc - col0 - 16 * v, 0, 16);
    mask[v] = static_cast<__mmask16>((1u << left) - 1);
    bias_v[v] = last && bias ? _mm512_maskz_loadu_ps(mask[v], bias + col0 + 16 * v)
                             : _mm512_setzero_ps();
  }
#  pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    if (i >= n)
      break;
    float* cr = c + (r + i) * ldc + col0;
#  pragma GCC unroll 3
    for (int v = 0; v < V; ++v) {
      __m512 sum = _mm512_add_ps(acc[i][v], bias_v[v]);
      if (!first)
        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask[v], cr + 16 * v));
      if (relu)
        sum = _mm512_max_ps(sum, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(cr + 16 * v, mask[v], sum);
    }
  }
}

/// Copies kk rows of `real` (<= 48) floats (row k at src + k * stride) into a packed panel
/// (rows of 48, zeros past real) and sums each column over the rows, in row order, into
/// sums: one pass over the rows (dense's dbias from dy, which the pass reads anyway).
__attribute__((target("avx512f"))) void pack_rows_sum(const float* src, int64_t stride,
                                                      int64_t kk, int64_t real, float* dst,
                                                      float* sums) {
  __mmask16 m[3];
  __m512 acc[3];
  for (int v = 0; v < 3; ++v) {
    m[v] = static_cast<__mmask16>((1u << std::clamp<int64_t>(real - 16 * v, 0, 16)) - 1);
    acc[v] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kk; ++k, src += stride, dst += gemm_nr) {
#  pragma GCC unroll 3
    for (int v = 0; v < 3; ++v) {
      __m512 x = _mm512_maskz_loadu_ps(m[v], src + 16 * v);
      _mm512_store_ps(dst + 16 * v, x);
      acc[v] = _mm512_add_ps(acc[v], x);
    }
  }
  for (int v = 0; v < 3; ++v)
    _mm512_mask_storeu_ps(sums + 16 * v, m[v], acc[v]);
}

/// The operand b as rows k of n values, element (k, j) at p[k * row_stride + j * col_stride].
struct gemm_b {
  const float* p;
  int64_t row_stride, col_stride;
};

/// One product c [m, n] (row stride n) = op(a) [m, kk] b [kk, n] (+ bias, nullptr: none;
/// then ReLU when relu), op(a) as gemm_tile's, kk > 0. colsum (n floats, or nullptr): also
/// the sums of b's columns over its kk rows, each in row order (dense's dbias, taken while
/// dy is packed).
struct gemm_job {
  const float* a;
  int64_t lda, m, kk;
  gemm_b b;
  int64_t n;
  const float* bias;
  float* c;
  bool trans = false;
  bool relu = false;
  float* colsum = nullptr;
  /// Called with each block of rows [r0, r1) of c once final (nullptr: none).
  const std::function<void(int64_t, int64_t)>* then = nullptr;
  // Set by plan(): the packed b (nullptr: b is read in place), its panels, the block of kk,
  // the tiles of 8 rows.
  float* bp = nullptr;
  int64_t panels = 0, kc = 0, tiles = 0;

  /// The most tiles one chunk takes: their rows of c (read and written once per block of
  /// kk) stay in L2 beside the block of b, about 256 KiB of c (16 tiles at n = 512); a
  /// chunk of all the rows sent c through L3 for every block of kk.
  int64_t max_chunk() const {
    return std::max(gemm_min_tiles, (int64_t{256} << 10) / (8 * n * int64_t{sizeof(float)}));
  }

  /// Panels to pack (0 when b is read in place).
  int64_t pack_parts() const { return bp ? panels : 0; }

  void plan(int slot) {
    panels = (n + gemm_nr - 1) / gemm_nr;
    // b's rows already hold whole vectors of 16 (the forward's weights, out a multiple of
    // 16): the tiles read them in place, as a packed panel with a row stride, and the
    // per-call pack (a pass over b, and the wait for it) is skipped. Its k-block stays in
    // L2 as the packed one would.
    const bool in_place = b.col_stride == 1 && n % 16 == 0 && !colsum;
    bp = in_place ? nullptr : detail::scratch(static_cast<size_t>(panels * kk * gemm_nr), slot);
    const int64_t nk = (kk + gemm_kc - 1) / gemm_kc;
    kc = (kk + nk - 1) / nk;
    tiles = (m + 7) / 8;
  }

  /// Packs panel q of b ([kk, 48], zero columns past n), with its column sums when colsum
  /// is set.
  void pack_panel(int64_t q) const {
    const int64_t col0 = q * gemm_nr, real = std::min(gemm_nr, n - col0);
    float* dst = bp + q * kk * gemm_nr;
    const float* src = b.p + col0 * b.col_stride;
    if (b.col_stride == 1 && colsum) {
      pack_rows_sum(src, b.row_stride, kk, real, dst, colsum + col0);
      return;
    }
    if (b.col_stride == 1) {
      for (int64_t k = 0; k < kk; ++k) {
        std::memcpy(dst + k * gemm_nr, src + k * b.row_stride,
                    static_cast<size_t>(real) * sizeof(float));
        std::fill(dst + k * gemm_nr + real, dst + (k + 1) * gemm_nr, 0.0f);
      }
    } else {
      for (int64_t k = 0; k < kk; ++k) {
        for (int64_t j = 0; j < real; ++j)
          dst[k * gemm_nr + j] = src[k * b.row_stride + j * b.col_stride];
        std::fill(dst + k * gemm_nr + real, dst + (k + 1) * gemm_nr, 0.0f);
      }
    }
    if (colsum) {
      float* s = colsum + col0;
      std::fill(s, s + real, 0.0f);
      for (int64_t k = 0; k < kk; ++k)
        for (int64_t j = 0; j < real; ++j)
          s[j] += dst[k * gemm_nr + j];
    }
  }

  /// Tiles [t0, t1): the blocks of kk outermost, so that the packed block of b (<= 256 x n
  /// floats) stays in L2 and a tile's rows of a in L1 while every panel passes.
  void run_tiles(int64_t t0, int64_t t1) const {
    for (int64_t k0 = 0; k0 < kk; k0 += kc) {
      const int64_t kn = std::min(kc, kk - k0);
      const bool first = k0 == 0, last = k0 + kn == kk;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r = t * 8, rows = std::min<int64_t>(8, m - r);
        for (int64_t p = 0; p < panels; ++p) {
          const int64_t col0 = p * gemm_nr;
          const float* panel = bp ? bp + p * kk * gemm_nr : b.p + col0;
          const int64_t ldp = bp ? gemm_nr : b.row_stride;
          const int v = static_cast<int>((std::min(gemm_nr, n - col0) + 15) / 16);
          if (trans)
            tile<true>(v, r, rows, panel, ldp, k0, kn, first, last, col0);
          else
            tile<false>(v, r, rows, panel, ldp, k0, kn, first, last, col0);
        }
        if (last && then)
          (*then)(r, r + rows);
      }
    }
  }

  template <bool Trans>
  void tile(int v, int64_t r, int64_t rows, const float* panel, int64_t ldp, int64_t k0,
            int64_t kn, bool first, bool last, int64_t col0) const {
    const bool act = last && relu;
    switch (v) {
    case 3:
      gemm_tile<3, Trans>(a, lda, r, rows, panel, ldp, k0, kn, first, last, act, bias, col0, n,
                            c);
      break;
    case 2:
      gemm_tile<2, Trans>(a, lda, r, rows, panel, ldp, k0, kn, first, last, act, bias, col0, n,
                            c);
      break;
    default:
      gemm_tile<1, Trans>(a, lda, r, rows, panel, ldp, k0, kn, first, last, act, bias, col0, n,
                            c);
      break;
    }
  }
};

/// Runs the jobs (one, or dense's two gradients together) in one fork-join region: each
/// thread packs panels until none is left, waits until all are packed, then claims tiles of
/// the jobs in turn. Tiles are claimed guided: a claim takes a share of the tiles left
/// (remaining / 2 threads, at least gemm_min_tiles, never past its job's end), so the first
/// claims are large and the last ones small, and a thread that starts late or runs slower
/// leaves at most a few tiles' work for the other to wait on. A chunk streams the packed b
/// once per block of kk, so chunks stay >= 4 tiles. One region rather than a pack and a
/// product per job: each region's end waits for the slower thread. Each output's sum runs in
/// the same order whatever the split.
void gemm_avx512(gemm_job* jobs, int count) {
  int64_t pack_parts = 0, tiles = 0;
  for (int i = 0; i < count; ++i) {
    jobs[i].plan(1 + i);
    pack_parts += jobs[i].pack_parts();
    tiles += jobs[i].tiles;
  }
  auto pack = [&](int64_t part) {
    for (int i = 0; i < count; ++i) {
      if (part < jobs[i].pack_parts()) {
        jobs[i].pack_panel(part);
        return;
      }
      part -= jobs[i].pack_parts();
    }
  };
  const int threads = detail::cpu_threads();
  if (threads <= 1 || tiles < 2 * gemm_min_tiles) {
    for (int64_t p = 0; p < pack_parts; ++p)
      pack(p);
    for (int i = 0; i < count; ++i)
      for (int64_t t = 0; t < jobs[i].tiles; t += jobs[i].max_chunk())
        jobs[i].run_tiles(t, std::min(jobs[i].tiles, t + jobs[i].max_chunk()));
    return;
  }
  std::atomic<int64_t> next_pack{0}, packed{0}, next_tile{0};
  detail::parallel_for(threads, [&](int) {
    for (int64_t p; (p = next_pack.fetch_add(1, std::memory_order_relaxed)) < pack_parts;) {
      pack(p);
      packed.fetch_add(1, std::memory_order_release);
    }
    // Only panels another thread has claimed remain (one takes about 10 us); wait for those.
    for (int spins = 0; packed.load(std::memory_order_acquire) != pack_parts; ++spins) {
      if (spins < 256)
        cpu_relax();
      else
        std::this_thread::yield();
    }
    for (int64_t t0 = next_tile.load(std::memory_order_relaxed), t1;;) {
      if (t0 >= tiles)
        return;
      int i = 0;
      int64_t base = 0;
      while (i + 1 < count && t0 >= base + jobs[i].tiles)
        base += jobs[i++].tiles;
      t1 = std::min(base + jobs[i].tiles,
                    t0 + std::clamp((tiles - t0) / (2 * threads), gemm_min_tiles,
                                    jobs[i].max_chunk()));
      if (next_tile.compare_exchange_weak(t0, t1, std::memory_order_relaxed)) {
        jobs[i].run_tiles(t0 - base, t1 - base);
        t0 = next_tile.load(std::memory_order_relaxed);
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

namespace {

/// y rows [r0, r1) (out wide) = max(y + bias, 0); NaN stays NaN.
COMB_CLONES
void bias_relu_rows(float* y, int64_t r0, int64_t r1, int64_t out, const float* bias) {
  for (int64_t r = r0; r < r1; ++r) {
    float* yr = y + r * out;
    for (int64_t o = 0; o < out; ++o)
      yr[o] = std::max(yr[o] + bias[o], 0.0f);
  }
}

void dense_act(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
               const float* bias, bool relu, float* y,
               const std::function<void(int64_t, int64_t)>* then = nullptr) {
  if (in > 0 && out <= narrow_max) {
    dense_narrow(x, b, in, w, out, bias, y);
  } else {
#ifdef COMB_DENSE_AVX512
    if (in > 0 && b >= 8 && detail::use_avx512_kernels()) {
      gemm_job j{x, in, b, in, gemm_b{w, out, 1}, out, bias, y};
      j.relu = relu;
      j.then = then;
      gemm_avx512(&j, 1);
      return;
    }
#endif
    if (relu && bias && in > 0) {
      // The product, then bias and ReLU in one pass over y (not a pass writing the bias into
      // y, the product adding to it, and a pass for the ReLU).
      detail::sgemm(/*trans_a=*/false, /*trans_b=*/false, b, out, in, 1.0f, x, in, w, out, 0.0f,
                    y, out);
      detail::parallel_range(b, std::max<int64_t>(1, 16384 / std::max<int64_t>(out, 1)),
                             [&](int64_t r0, int64_t r1) { bias_relu_rows(y, r0, r1, out, bias); });
      relu = false;
    } else {
      if (bias)
        for (int64_t i = 0; i < b; ++i)
          std::memcpy(y + i * out, bias, static_cast<size_t>(out) * sizeof(float));
      if (in == 0) {
        if (!bias)
          std::memset(y, 0, static_cast<size_t>(b * out) * sizeof(float));
      } else {
        detail::sgemm(/*trans_a=*/false, /*trans_b=*/false, b, out, in, 1.0f, x, in, w, out,
                      bias ? 1.0f : 0.0f, y, out);
      }
    }
  }
  if (relu)
    detail::parallel_range(b * out, 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        y[i] = std::max(y[i], 0.0f);
    });
  if (then && b > 0)
    (*then)(0, b);
}

#ifdef COMB_DENSE_AVX512
/// dh_pre rows [r0, r1) = (dy w^T) masked by h > 0; wt is w transposed, [out, in]. Blocks of
/// 64 outputs in 8 accumulators, each broadcast of dy[r, c] feeding 8 multiply-adds with wt
/// read from memory (wt, out x in floats, stays in L1/L2 across rows).
__attribute__((target("avx2,fma"))) void narrow_relu_bwd_rows_avx2(
  const float* h, const float* dy, const float* wt, int64_t r0, int64_t r1, int64_t in,
  int64_t out, float* d) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t r = r0; r < r1; ++r) {
    const float* g = dy + r * out;
    const float* hr = h + r * in;
    float* dr = d + r * in;
    int64_t j = 0;
    for (; j + 64 <= in; j += 64) {
      __m256 acc[8];
#  pragma GCC unroll 8
      for (int v = 0; v < 8; ++v)
        acc[v] = zero;
      for (int64_t c = 0; c < out; ++c) {
        __m256 gc = _mm256_broadcast_ss(g + c);
        const float* wc = wt + c * in + j;
#  pragma GCC unroll 8
        for (int v = 0; v < 8; ++v)
          acc[v] = _mm256_fmadd_ps(gc, _mm256_loadu_ps(wc + 8 * v), acc[v]);
      }
#  pragma GCC unroll 8
      for (int v = 0; v < 8; ++v) {
        __m256 live = _mm256_cmp_ps(_mm256_loadu_ps(hr + j + 8 * v), zero, _CMP_GT_OQ);
        _mm256_storeu_ps(dr + j + 8 * v, _mm256_and_ps(acc[v], live));
      }
    }
    for (; j < in; j += 8) {
      __m256i m = detail::first_lanes(in - j);
      __m256 acc = zero;
      for (int64_t c = 0; c < out; ++c)
        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(g + c), _mm256_maskload_ps(wt + c * in + j, m),
                              acc);
      __m256 live = _mm256_cmp_ps(_mm256_maskload_ps(hr + j, m), zero, _CMP_GT_OQ);
      _mm256_maskstore_ps(dr + j, m, _mm256_and_ps(acc, live));
    }
  }
}

/// Columns [j0, j1) of dw = h^T dy (dw [in, OUT]) and of dbias_prev = column sums of d, each
/// block of 8 columns over every row in order: OUT accumulators (one per output), each row's
/// 8 values of h broadcast-multiplied by its OUT values of dy.
template <int OUT>
__attribute__((target("avx2,fma"))) void narrow_relu_bwd_cols_avx2(
  const float* h, const float* dy, const float* d, int64_t b, int64_t in, int64_t j0, int64_t j1,
  float* dw, float* dbias_prev) {
  for (int64_t j = j0; j < j1; j += 8) {
    const int64_t lanes = std::min<int64_t>(8, in - j);
    __m256i m = detail::first_lanes(lanes);
    __m256 acc[OUT];
#  pragma GCC unroll 16
    for (int c = 0; c < OUT; ++c)
      acc[c] = _mm256_setzero_ps();
    __m256 sum = _mm256_setzero_ps();
    for (int64_t r = 0; r < b; ++r) {
      __m256 hv = _mm256_maskload_ps(h + r * in + j, m);
      sum = _mm256_add_ps(sum, _mm256_maskload_ps(d + r * in + j, m));
#  pragma GCC unroll 16
      for (int c = 0; c < OUT; ++c)
        acc[c] = _mm256_fmadd_ps(_mm256_broadcast_ss(dy + r * OUT + c), hv, acc[c]);
    }
    if (dbias_prev)
      _mm256_maskstore_ps(dbias_prev + j, m, sum);
    alignas(32) float lane[8];
#  pragma GCC unroll 16
    for (int c = 0; c < OUT; ++c) {
      _mm256_store_ps(lane, acc[c]);
      for (int64_t l = 0; l < lanes; ++l)
        dw[(j + l) * OUT + c] = lane[l];
    }
  }
}

using narrow_cols_fn = void (*)(const float*, const float*, const float*, int64_t, int64_t,
                                int64_t, int64_t, float*, float*);

template <int... Outs>
narrow_cols_fn narrow_cols_for(int64_t out, std::integer_sequence<int, Outs...>) {
  narrow_cols_fn fns[] = {&narrow_relu_bwd_cols_avx2<Outs + 1>...};
  return out >= 1 && out <= static_cast<int64_t>(sizeof...(Outs)) ? fns[out - 1] : nullptr;
}
#endif

} // namespace

void dense_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
               const float* bias, float* y) {
  dense_act(x, b, in, w, out, bias, false, y);
}

void dense_relu_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                    const float* bias, float* y) {
  dense_act(x, b, in, w, out, bias, true, y);
}

void dense_relu_then_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                         const float* bias, float* y,
                         const std::function<void(int64_t, int64_t)>& then) {
  dense_act(x, b, in, w, out, bias, true, y, &then);
}

void dense_backward_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                        const float* dy, float* dx, float* dw, float* dbias) {
#ifdef COMB_DENSE_AVX512
  if (b > 0 && out > 0 && in >= 8 && b >= 8 && detail::use_avx512_kernels()) {
    // dw [in, out] = x^T dy (dbias: dy's column sums, taken as dy is packed); dx [b, in] =
    // dy w^T (w read transposed into the panels); both in one region.
    gemm_job jobs[2] = {{x, in, in, b, gemm_b{dy, out, 1}, out, nullptr, dw},
                        {dy, out, b, out, gemm_b{w, 1, out}, in, nullptr, dx}};
    jobs[0].trans = true;
    jobs[0].colsum = dbias;
    gemm_avx512(jobs, dx ? 2 : 1);
    return;
  }
#endif
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

void dense_relu_narrow_backward_cpu(const float* h, int64_t b, int64_t in, const float* w,
                                    int64_t out, const float* dy, float* dh_pre, float* dw,
                                    float* dbias, float* dbias_prev) {
#ifdef COMB_DENSE_AVX512
  if (b > 0 && in > 0 && out >= 1 && out <= narrow_max && !detail::use_avx512_kernels()
      && detail::use_avx2_kernels()) {
    std::vector<float> wt(static_cast<size_t>(out * in));
    for (int64_t j = 0; j < in; ++j)
      for (int64_t c = 0; c < out; ++c)
        wt[static_cast<size_t>(c * in + j)] = w[j * out + c];
    detail::parallel_range(b, std::max<int64_t>(1, 8192 / std::max<int64_t>(in * out / 8, 1)),
                           [&](int64_t r0, int64_t r1) {
                             narrow_relu_bwd_rows_avx2(h, dy, wt.data(), r0, r1, in, out, dh_pre);
                           });
    auto cols = narrow_cols_for(out, std::make_integer_sequence<int, narrow_max>{});
    detail::parallel_range((in + 7) / 8, 1, [&](int64_t k0, int64_t k1) {
      cols(h, dy, dh_pre, b, in, k0 * 8, std::min(in, k1 * 8), dw, dbias_prev);
    });
    if (dbias)
      column_sums(dy, b, out, dbias);
    return;
  }
#endif
  dense_backward_cpu(h, b, in, w, out, dy, dh_pre, dw, dbias);
  bias_act_backward_cpu(h, dh_pre, b, in, activation::relu, dh_pre, dbias_prev);
}

} // namespace comb::kernels
