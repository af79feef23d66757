#include "kernels/detail/blas.hpp"

#include "kernels/detail/cpu_pool.hpp"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace comb::kernels::detail {

namespace {

/// Rows (or columns) of C in one part of a split sgemm: below this, OpenBLAS's kernel loses
/// more to packing B again than the split gains.
constexpr int64_t min_part = 64;
/// Parts per pool thread: enough that a thread the machine preempts holds back a small share.
constexpr int64_t parts_per_thread = 2;

/// -1: not decided yet (COMB_SGEMM_SPLIT from the environment on first use).
std::atomic<int> split_mode{-1};

void one_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

/// Parts of `extent` rows/columns for `threads`, each a multiple of 16 and >= min_part.
int64_t part_size(int64_t extent, int threads) {
  int64_t parts = std::min<int64_t>(int64_t{threads} * parts_per_thread, extent / min_part);
  int64_t size = (extent + parts - 1) / parts;
  return (size + 15) / 16 * 16;
}

} // namespace

bool sgemm_split() {
  int mode = split_mode.load(std::memory_order_relaxed);
  if (mode < 0) {
    // Off leaves OpenBLAS's thread count as it is (a caller may have set it).
    const char* e = std::getenv("COMB_SGEMM_SPLIT");
    if (e && std::strcmp(e, "1") == 0)
      set_sgemm_split(true);
    else
      split_mode.store(0);
    mode = split_mode.load();
  }
  return mode == 1;
}

void set_sgemm_split(bool on) {
  split_mode.store(on ? 1 : 0);
  // OpenBLAS's own threads would multiply with the pool's when split; otherwise they are
  // its threads, as many as the pool's.
  openblas_set_num_threads(on ? 1 : cpu_threads());
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  int threads = cpu_threads();
  if (sgemm_split() && threads > 1) {
    // Rows of C (rows of op(A)) when there are enough of them, else columns (of op(B)).
    if (m >= 2 * min_part) {
      int64_t rows = part_size(m, threads);
      parallel_for(static_cast<int>((m + rows - 1) / rows), [&](int p) {
        int64_t r0 = p * rows;
        one_sgemm(trans_a, trans_b, std::min(rows, m - r0), n, k, alpha,
                  trans_a ? a + r0 : a + r0 * lda, lda, b, ldb, beta, c + r0 * ldc, ldc);
      });
      return;
    }
    if (n >= 2 * min_part) {
      int64_t cols = part_size(n, threads);
      parallel_for(static_cast<int>((n + cols - 1) / cols), [&](int p) {
        int64_t c0 = p * cols;
        one_sgemm(trans_a, trans_b, m, std::min(cols, n - c0), k, alpha, a, lda,
                  trans_b ? b + c0 * ldb : b + c0, ldb, beta, c + c0, ldc);
      });
      return;
    }
    // Too small to split: one single-threaded call (OpenBLAS runs on 1 thread in this mode).
  }
  park_workers(); // the cores go to OpenBLAS now
  one_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

} // namespace comb::kernels::detail
