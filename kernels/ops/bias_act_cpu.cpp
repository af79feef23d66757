// Fast bias + activation: one fused pass over rows split across threads, vectorised
// (AVX-512 / AVX2 clones chosen at run time). Gradient likewise; dbias reduced per thread.
#include "kernels/ops/bias_act.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace comb::kernels {

namespace {

COMB_CLONES
void rows_fwd(const float* x, int64_t r0, int64_t r1, int64_t c, const float* bias, float lo,
              float hi, float* y) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * c;
    float* yr = y + r * c;
    if (bias)
      for (int64_t j = 0; j < c; ++j)
        yr[j] = std::min(std::max(xr[j] + bias[j], lo), hi);
    else
      for (int64_t j = 0; j < c; ++j)
        yr[j] = std::min(std::max(xr[j], lo), hi);
  }
}

COMB_CLONES
void rows_bwd(const float* y, const float* dy, int64_t r0, int64_t r1, int64_t c, activation a,
              float* dx) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* yr = y + r * c;
    const float* gr = dy + r * c;
    float* dr = dx + r * c;
    if (a == activation::relu)
      for (int64_t j = 0; j < c; ++j)
        dr[j] = yr[j] > 0.0f ? gr[j] : 0.0f;
    else if (a == activation::relu6)
      for (int64_t j = 0; j < c; ++j)
        dr[j] = (yr[j] > 0.0f && yr[j] < 6.0f) ? gr[j] : 0.0f;
    else
      for (int64_t j = 0; j < c; ++j)
        dr[j] = gr[j];
  }
}

/// dbias[j] = sum over rows of dx[r, j]; threads own column blocks, so the order of the
/// additions (and the result) does not depend on scheduling.
COMB_CLONES
void column_block_sums(const float* dx, int64_t rows, int64_t c, int64_t c0, int64_t c1,
                       float* dbias) {
  for (int64_t j = c0; j < c1; ++j)
    dbias[j] = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = c0; j < c1; ++j)
      dbias[j] += dx[r * c + j];
}

} // namespace

void bias_act_cpu(const float* x, int64_t rows, int64_t c, const float* bias, activation a,
                  float* y) {
  float lo = a == activation::none ? -std::numeric_limits<float>::infinity() : 0.0f;
  float hi = a == activation::relu6 ? 6.0f : std::numeric_limits<float>::infinity();
  if (a == activation::none) {
    // min/max with infinities would turn NaN into a number on some paths; keep NaN.
    detail::parallel_range(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(c, 1)),
                           [&](int64_t r0, int64_t r1) {
                             for (int64_t r = r0; r < r1; ++r)
                               for (int64_t j = 0; j < c; ++j)
                                 y[r * c + j] = x[r * c + j] + (bias ? bias[j] : 0.0f);
                           });
    return;
  }
  detail::parallel_range(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(c, 1)),
                         [&](int64_t r0, int64_t r1) { rows_fwd(x, r0, r1, c, bias, lo, hi, y); });
}

void bias_act_backward_cpu(const float* y, const float* dy, int64_t rows, int64_t c, activation a,
                           float* dx, float* dbias) {
  detail::parallel_range(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(c, 1)),
                         [&](int64_t r0, int64_t r1) { rows_bwd(y, dy, r0, r1, c, a, dx); });
  if (dbias)
    detail::parallel_range((c + 15) / 16, 1, [&](int64_t b0, int64_t b1) {
      column_block_sums(dx, rows, c, b0 * 16, std::min(c, b1 * 16), dbias);
    });
}

} // namespace comb::kernels
